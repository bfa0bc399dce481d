// TS_CUDA_CALL(expr): evaluates expr in a CUDA build; in a CPU-only build it is an Error instead
// (it cannot be reached there: no CUDA tensor can exist) so the CUDA function need not exist.
// Library sources only: TESSERA_HAS_CUDA is a private definition.
//   if (x.is_cuda()) TS_CUDA_CALL(relu_cuda(x, out)); else relu_cpu(x, out);
#pragma once

#include "core/error.h"

#if TESSERA_HAS_CUDA
#define TS_CUDA_CALL(...) __VA_ARGS__
#else
#define TS_CUDA_CALL(...) TS_ERROR("tessera was built without CUDA")
#endif
