// tessera::dist under mpirun (ctest runs it with 1 and with 2 ranks): the collectives, and
// DistributedDataParallel training that equals one process trained on the same global batch.
// Every rank runs every test and every collective in the same order; checks are EXPECTs (never an
// early return that would leave another rank waiting), and main() fails if any rank failed.
#include <gtest/gtest.h>

#include "data/synthetic.h"
#include "data/weight_map.h"
#include "distributed/ddp.h"
#include "distributed/dist.h"
#include "eval/coco_eval.h"
#include "models/mask_rcnn.h"
#include "models/unet.h"
#include "tessera.h"
#include "test_helpers.h"

namespace tessera {
namespace {

using dist::rank;
using dist::world_size;

TEST(Dist, CollectivesOnEveryDtype) {
  const int r = rank(), w = world_size();
  Tensor a = full({5}, static_cast<double>(r + 1), kFloat64);
  dist::all_reduce(a);
  EXPECT_EQ(a.to_vector<double>(), std::vector<double>(5, w * (w + 1) / 2.0));
  Tensor b = full({3}, static_cast<double>(r + 1), kFloat32);
  dist::all_reduce(b, dist::ReduceOp::Avg);
  EXPECT_EQ(b.to_vector<float>(), std::vector<float>(3, static_cast<float>((w + 1) / 2.0)));
  Tensor c = from_vector<int64_t>({r, -r});
  dist::all_reduce(c, dist::ReduceOp::Max);
  EXPECT_EQ(c.to_vector<int64_t>(), (std::vector<int64_t>{w - 1, 0}));
  Tensor d = r == 0 ? arange(4, kInt32) : zeros({4}, kInt32);
  dist::broadcast(d, 0);
  EXPECT_EQ(d.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3}));
  const Tensor g = dist::all_gather(full({2}, static_cast<double>(r), kFloat64));
  EXPECT_EQ(g.shape(), (Shape{w, 2}));
  for (int k = 0; k < w; ++k) EXPECT_EQ(g.select(0, k).to_vector<double>(), std::vector<double>(2, k));
  Tensor e = full({1000}, 1.0, kFloat32);
  dist::Work work = dist::all_reduce_sum_async(e);
  work.wait();
  EXPECT_EQ(e.to_vector<float>()[999], static_cast<float>(w));
  dist::barrier();
  EXPECT_THROW(dist::broadcast(d, w), Error);  // no such root (checked before any communication)
}

TEST(Dist, AllGatherBytesOfEveryLength) {
  const int r = rank(), w = world_size();
  std::string mine;
  for (int k = 0; k < 3 * r; ++k) mine.push_back(static_cast<char>('a' + (r + k) % 26));  // rank 0: none
  const std::vector<std::string> all = dist::all_gather_bytes(mine);
  ASSERT_EQ(static_cast<int>(all.size()), w);
  for (int q = 0; q < w; ++q) {
    ASSERT_EQ(all[static_cast<size_t>(q)].size(), static_cast<size_t>(3 * q));
    for (int k = 0; k < 3 * q; ++k) EXPECT_EQ(all[static_cast<size_t>(q)][static_cast<size_t>(k)], 'a' + (q + k) % 26);
  }
}

// Sharded evaluation: each rank computes its images' results (some images have none, masks of
// several lengths); every rank gets the list one process would have made, bit for bit.
TEST(DistEval, ShardedResultsEqualTheOneProcessList) {
  auto results_of = [](int64_t i) {
    std::vector<CocoResult> out;
    for (int64_t k = 0; k < (i * 7) % 4; ++k) {
      CocoResult c;
      c.image_id = 100 + i;
      c.category_id = 1 + k;
      c.score = 1.0 / (3.0 + static_cast<double>(i + k));  // not representable exactly in decimal
      c.bbox = {0.1 * static_cast<double>(i), 0.3, 10.0 / 3.0, std::nextafter(5.0, 6.0)};
      c.has_bbox = true;
      c.has_segmentation = k % 2 == 0;
      c.height = 20;
      c.width = 30;
      if (c.has_segmentation)
        for (int64_t q = 0; q <= i % 5; ++q) c.rle.push_back(static_cast<uint32_t>(q * 13 + i));
      out.push_back(c);
    }
    return out;
  };
  const int64_t n = 11;
  std::vector<int64_t> called;
  const std::vector<CocoResult> got = sharded_coco_results(n, [&](int64_t i) {
    called.push_back(i);
    return results_of(i);
  });
  for (int64_t i : called) EXPECT_EQ(i % world_size(), rank()) << "image " << i << " computed on rank " << rank();
  EXPECT_EQ(static_cast<int64_t>(called.size()), (n - rank() + world_size() - 1) / world_size());
  std::vector<CocoResult> want;
  for (int64_t i = 0; i < n; ++i)
    for (const CocoResult& c : results_of(i)) want.push_back(c);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(got[k].image_id, want[k].image_id) << k;
    EXPECT_EQ(got[k].category_id, want[k].category_id) << k;
    EXPECT_EQ(got[k].score, want[k].score) << k;
    EXPECT_EQ(got[k].bbox, want[k].bbox) << k;
    EXPECT_EQ(got[k].has_segmentation, want[k].has_segmentation) << k;
    EXPECT_EQ(got[k].rle, want[k].rle) << k;
    EXPECT_EQ(got[k].height * 1000 + got[k].width, want[k].height * 1000 + want[k].width) << k;
  }
}

// K steps of U-Net training with SGD: every rank trains on its share of each global batch under
// DistributedDataParallel; one process trains on the whole batch. In float64 the parameters agree
// to rounding (1e-10), for any world size and bucket size.
TEST(DistDDP, UNetStepsEqualOneProcessOnTheGlobalBatch) {
  UNetOptions o;
  o.width = 4;
  o.depth = 2;
  o.dropout = 0.0;
  manual_seed(7);
  UNet reference(o);
  reference.to(kFloat64);
  manual_seed(7 + static_cast<uint64_t>(rank()));  // other ranks start elsewhere: DDP broadcasts rank 0's
  UNet net(o);
  net.to(kFloat64);
  dist::DDPOptions ddp_options;
  ddp_options.bucket_bytes = 4096;  // several buckets, started while backward runs
  dist::DistributedDataParallel ddp(net, ddp_options);
  EXPECT_GT(ddp.num_buckets(), 2u);

  SyntheticCells cells(6, 5, 64, 64);
  const int64_t in = 92, out = net.output_size(in), m = (in - out) / 2;
  auto sample = [&](int64_t i) {
    Sample s = cells.get(i);
    s.weight = unet_weight_map(s.mask, s.instances);
    Tensor x = mirror_pad(s.image, m, m, m, m).narrow(1, 0, in).narrow(2, 0, in).unsqueeze(0).to(kFloat64).contiguous();
    Tensor t = s.mask.narrow(0, 0, out).narrow(1, 0, out).unsqueeze(0).contiguous();
    Tensor wt = s.weight.narrow(0, 0, out).narrow(1, 0, out).unsqueeze(0).to(kFloat64).contiguous();
    return std::tuple{x, t, wt};
  };
  SGD ref_opt(reference.parameters(), SGDOptions{0.05, 0.9});
  SGD opt(net.parameters(), SGDOptions{0.05, 0.9});
  const int64_t global_batch = 2;
  ASSERT_EQ(global_batch % world_size(), 0);
  for (int64_t step = 0; step < 3; ++step) {
    // The reference: the whole global batch in one forward.
    std::vector<Tensor> xs, ts, ws;
    for (int64_t k = 0; k < global_batch; ++k) {
      auto [x, t, wt] = sample(step * global_batch + k);
      xs.push_back(x);
      ts.push_back(t);
      ws.push_back(wt);
    }
    ref_opt.zero_grad();
    pixel_weighted_cross_entropy(reference.forward(cat(xs, 0)), cat(ts, 0), cat(ws, 0)).backward();
    ref_opt.step();
    // This rank's share.
    std::vector<Tensor> mx, mt, mw;
    for (int64_t k = rank(); k < global_batch; k += world_size()) {
      mx.push_back(xs[static_cast<size_t>(k)]);
      mt.push_back(ts[static_cast<size_t>(k)]);
      mw.push_back(ws[static_cast<size_t>(k)]);
    }
    opt.zero_grad();
    pixel_weighted_cross_entropy(net.forward(cat(mx, 0)), cat(mt, 0), cat(mw, 0)).backward();
    ddp.finish();
    opt.step();
  }
  const auto a = net.named_parameters(), b = reference.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, amax(abs(sub(a[k].second, b[k].second))).item<double>());
  EXPECT_LE(worst, 1e-10) << "rank " << rank() << " of " << world_size();
  // And every rank holds the same parameters.
  const Tensor mine = net.named_parameters().back().second.detach().contiguous();
  const Tensor all = dist::all_gather(mine);
  for (int k = 0; k < world_size(); ++k) EXPECT_TRUE(test::equal(all.select(0, k), mine)) << "rank " << k;
}

// A Mask R-CNN step: each rank's gradient on its image, averaged by DDP, equals one process's
// average of the per-image gradients (what data parallelism computes; a batch of two in one forward
// normalises its losses over both images' anchors and RoIs together instead). Every anchor and
// proposal is sampled, and each image gets the same generator, so nothing random differs.
TEST(DistDDP, MaskRCNNStepEqualsOneProcessAveragingPerImageGradients) {
  MaskRCNNOptions o;
  o.backbone.depth = 18;
  o.min_size = 64;
  o.max_size = 80;
  o.anchor_sizes = {8, 16, 32, 64, 128};
  o.rpn.pre_nms_top_n_train = 100000;
  o.rpn.post_nms_top_n_train = 100;
  o.rpn.batch_size_per_image = 10000000;
  o.roi_heads.batch_size_per_image = 10000000;
  o.roi_heads.representation_size = 32;
  manual_seed(9);
  MaskRCNN reference(o);
  reference.train();
  manual_seed(9 + static_cast<uint64_t>(rank()));
  MaskRCNN net(o);
  net.train();
  dist::DistributedDataParallel ddp(net);
  SyntheticShapes shapes(2, 4, 64, 80);
  const std::vector<Sample> images = {shapes.get(0), shapes.get(1)};
  // One process: the per-image gradients, averaged.
  for (const Sample& s : images) {
    Generator g(5);
    reference.losses({s}, &g).total().backward();
  }
  for (Tensor& p : reference.parameters())
    if (p.grad().defined()) p.grad().copy_(mul(p.grad(), 0.5));
  // Data parallel: this rank's images (one each with two ranks; both, one backward each, alone).
  std::vector<Sample> mine;
  for (size_t k = static_cast<size_t>(rank()); k < images.size(); k += static_cast<size_t>(world_size())) mine.push_back(images[k]);
  for (const Sample& s : mine) {
    Generator g(5);
    net.losses({s}, &g).total().backward();
    ddp.finish();
  }
  for (Tensor& p : net.parameters())
    if (p.grad().defined()) p.grad().copy_(mul(p.grad(), 1.0 / static_cast<double>(mine.size())));
  const auto a = net.named_parameters(), b = reference.named_parameters();
  int compared = 0;
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    if (!b[k].second.grad().defined()) continue;
    ASSERT_TRUE(a[k].second.grad().defined()) << a[k].first;
    const Tensor& want = b[k].second.grad();  // relative to the gradient's largest element
    worst = std::max(worst, test::worst_ratio(a[k].second.grad(), want, amax(abs(want)).item<double>(), 0.0));
    ++compared;
  }
  EXPECT_GT(compared, 20);
  EXPECT_LE(worst, 1e-5) << "largest gradient difference relative to the gradient's size, rank " << rank();
}

// A branch that only rank 0 uses (as Mask R-CNN's mask head on images without masks): no rank
// waits for the others, and every rank ends with the same, averaged gradient for it.
struct TwoHeads : Module {
  std::shared_ptr<Linear> trunk = register_module("trunk", std::make_shared<Linear>(4, 3));
  std::shared_ptr<Linear> head_a = register_module("head_a", std::make_shared<Linear>(3, 2));
  std::shared_ptr<Linear> head_b = register_module("head_b", std::make_shared<Linear>(3, 2));
};

TEST(DistDDP, ParametersUnusedOnSomeRanksAreAveragedWithoutDeadlock) {
  manual_seed(3);
  TwoHeads net;
  net.to(kFloat64);
  dist::DistributedDataParallel ddp(net);
  Generator g(11 + static_cast<uint64_t>(rank()));
  const Tensor x = randn({5, 4}, kFloat64, &g);
  Tensor h = relu(net.trunk->forward(x));
  Tensor loss = sum(net.head_a->forward(h));
  if (rank() == 0) loss = add(loss, sum(net.head_b->forward(h)));
  loss.backward();
  ddp.finish();
  for (const auto& [name, p] : net.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name << " on rank " << rank();
    const Tensor all = dist::all_gather(p.grad().contiguous());
    for (int k = 1; k < world_size(); ++k) EXPECT_TRUE(test::equal(all.select(0, k), all.select(0, 0))) << name;
  }
  EXPECT_GT(sum(abs(net.head_b->weight.grad())).item<double>(), 0.0) << "rank 0's gradient, averaged";
  // A second step where no rank reaches head_b and rank 1 reaches nothing at all (finish() keeps
  // the ranks in step).
  net.zero_grad();
  if (rank() == 0) sum(net.head_a->forward(relu(net.trunk->forward(x)))).backward();
  ddp.finish();
  EXPECT_TRUE(net.trunk->weight.grad().defined());
}

TEST(DistDDP, ModelsThatDifferAcrossRanksAreRejectedAtStart) {
  // Rank 1 builds a wider layer: every rank gets the error (it names the rank), none hangs.
  Linear layer(4, world_size() > 1 && rank() == 1 ? 5 : 3);
  if (world_size() == 1) {
    EXPECT_NO_THROW(dist::DistributedDataParallel{layer});
    return;
  }
  try {
    dist::DistributedDataParallel ddp(layer);
    ADD_FAILURE() << "expected the configuration check to fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1's model differs from rank 0's"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  tessera::dist::init();
  const int rc = RUN_ALL_TESTS();
  // The run fails if any rank failed.
  tessera::Tensor worst = tessera::from_vector<int64_t>({rc});
  tessera::dist::all_reduce(worst, tessera::dist::ReduceOp::Max);
  tessera::dist::finalize();
  return worst.item<int64_t>() == 0 ? 0 : 1;
}
