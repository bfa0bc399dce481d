// tessera: the whole public API in one include.
#pragma once

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "models/box_coder.h"
#include "core/cuda.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/npy.h"
#include "core/parallel.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "kernels/conv_settings.h"
