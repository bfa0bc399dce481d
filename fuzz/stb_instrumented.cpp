// The fuzz build compiles Debian's stb headers here, with the fuzzer's coverage and the sanitizers,
// instead of linking the prebuilt libstb.a: the image decoder is then fuzzed where it parses.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
