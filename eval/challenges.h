// The measures of the challenges the U-Net paper was evaluated on, as the challenges define them.
//
// ISBI 2012 (EM segmentation; Arganda-Carreras et al. 2015, Front. Neuroanat. 9:142; the reference
// implementation is Fiji's Trainable_Segmentation metrics, whose choices are followed here). The
// ground truth is a label stack whose nonzero pixels are cells (the challenge's 255) and zeros are
// membrane; the proposal is a probability stack, 1 = certainly not membrane. Every measure is
// taken at the thresholds Fiji steps through (0, 0.1, ... summed in double: 11 values, the last
// 0.9999999999999999) and the best one is reported:
//  - V_Rand / V_Info (the final ranking measures, higher is better): per slice, the ground truth's
//    4-connected cells against the proposal's regions (probability > t) after border thinning (a
//    4-connected watershed of the border pixels, Vincent & Soille 1991, in Fiji's pixel order),
//    foreground-restricted (ground-truth membrane pixels are left out; proposal border pixels
//    count as singletons), the F-score of Rand split/merge scores or of the information-theoretic
//    ones; averaged over slices;
//  - Rand error: 1 - the best F-score of the foreground-restricted Rand index without thinning
//    (the proposal's 4-connected regions), counts summed over slices;
//  - pixel error: 1 - the best F-score of pixel classification (cell = positive), counts summed;
//  - warping error (Jain et al. 2010, as the U-Net paper reports it: "minimum splits and mergers"):
//    the ground truth is warped towards the thresholded proposal by flipping simple points, most
//    confident disagreements first, until nothing changes; the disagreements left are classified
//    and the splits and mergers among them counted, divided by all pixels of the stack; the
//    minimum over thresholds.
// CTC (Cell Tracking Challenge, Ulman et al. 2017): SEG, the mean Jaccard index of the reference
// objects, each matched to the predicted object that covers more than half of it (0 when none);
// DET, 1 - min(AOGM-D, AOGM-D0) / AOGM-D0 on the same matching over the frames given.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace tessera {

// Fiji's thresholds: 0.0, 0.1, ... while <= 1.0, stepped in double.
std::vector<double> isbi_thresholds();

struct IsbiScores {
  double v_rand = 0, v_info = 0;  // best over thresholds; 1 is perfect
  double rand_error = 0, pixel_error = 0, warping_error = 0;  // best over thresholds; 0 is perfect
  double v_rand_threshold = 0, v_info_threshold = 0, rand_threshold = 0, pixel_threshold = 0, warping_threshold = 0;
  int64_t splits = 0, mergers = 0;  // at the warping error's threshold
  int64_t slices = 0;
};

// gt: [S, H, W] or [H, W] labels (nonzero = cell); prob: the same shape, floating. warping: the
// warping error is the slow one (its simple-point passes), leave it out with false.
IsbiScores isbi_scores(const Tensor& gt, const Tensor& prob, bool warping = true);

// The pieces, for one [H, W] slice, exposed for tests (4-connected components of a slice are
// eval/segmentation.h's connected_components(mask, nullptr, 4)).
// Border thinning: the 4-connected watershed of the binary image `border` (nonzero = border
// pixel): each region (a 4-connected component of non-border pixels) floods the border pixels
// around it; where floods meet, a 1-pixel line stays 0. int64 [H, W] labels, 0 = watershed line.
Tensor watershed_thinning(const Tensor& border);
// The foreground-restricted Rand and information-theoretic F-scores of a proposal labelling (0 =
// boundary: each such pixel its own segment) against a ground-truth labelling (0 = left out).
double rand_fscore_foreground(const Tensor& gt_labels, const Tensor& pred_labels);
double info_fscore_foreground(const Tensor& gt_labels, const Tensor& pred_labels);

struct WarpResult {
  Tensor warped;  // int64 [H, W] 0/1: the ground truth after warping
  int64_t mismatches = 0, splits = 0, mergers = 0, hole_additions = 0, hole_deletions = 0, object_additions = 0,
          object_deletions = 0;
};
// gt_mask nonzero = cell; prob > threshold = cell in the proposal.
WarpResult warp_ground_truth(const Tensor& gt_mask, const Tensor& prob, double threshold);

struct CtcScores {
  double seg = 0, det = 0;
  int64_t references = 0, matched = 0;  // reference objects; matched ones (|R n S| > |R| / 2)
  double jaccard_sum = 0;
  int64_t false_negatives = 0, false_positives = 0, splits = 0;  // DET's edit operations
  int64_t frames = 0;
};
// Frames of instance ids ([H, W] each, 0 = background), reference and prediction in pairs.
CtcScores ctc_scores(const std::vector<Tensor>& reference, const std::vector<Tensor>& predicted);

}  // namespace tessera
