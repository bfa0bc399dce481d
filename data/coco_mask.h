// COCO masks with pycocotools' exact semantics: run-length encodings over the column-major
// (Fortran-order) image, starting with a run of zeros; the compressed string form; and polygons
// rasterised the way pycocotools' rleFrPoly does (vertices upsampled by 5, boundary crossings
// snapped back to pixel centres), so that masks — and therefore segm AP — match pycocotools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera::coco {

using Counts = std::vector<uint32_t>;

// The compressed string form (pycocotools' rleToString / rleFrString).
Counts rle_from_string(const std::string& s, const std::string& what = "RLE");
std::string rle_to_string(const Counts& counts);
// uint8 [h, w] mask of 0/1 from counts (which must add up to h * w).
Tensor rle_decode(const Counts& counts, int64_t h, int64_t w, const std::string& what = "RLE");
Counts rle_encode(const Tensor& mask);  // mask [h, w], nonzero = 1
// One polygon [x0, y0, x1, y1, ...] (at least 3 points).
Counts polygon_to_rle(const std::vector<double>& xy, int64_t h, int64_t w);
// Union of several polygons (an object's segmentation list), as a mask or as RLE (made from the
// polygons' outlines, never a dense mask: the cost follows the perimeter, not the image).
Tensor polygons_to_mask(const std::vector<std::vector<double>>& polygons, int64_t h, int64_t w);
Counts polygons_to_rle(const std::vector<std::vector<double>>& polygons, int64_t h, int64_t w);
// The union of two masks of one size, run by run (pycocotools' rleMerge with intersect=0).
Counts rle_union(const Counts& a, const Counts& b);
// Pixels set in both (pycocotools' rleArea of rleMerge with intersect=1).
uint64_t rle_intersection(const Counts& a, const Counts& b);
int64_t rle_area(const Counts& counts);

}  // namespace tessera::coco
