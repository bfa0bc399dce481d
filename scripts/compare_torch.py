#!/usr/bin/env python3
"""Sets tessera's benchmarks beside PyTorch's on the same machine, in the same run.

Runs build/bench/tessera_bench (or reads --tessera-json), times the same operations with PyTorch
(same sizes, same CPU thread count), and prints one row per benchmark with the ratio
tessera / PyTorch (below 1: tessera is faster). Run from the repository root:

    python3 scripts/compare_torch.py [--device cpu|cuda|all] [--tessera-json FILE] [--markdown FILE]

--markdown docs/performance.md writes the page of the documentation from the run: the date, the
CPU (model, AVX-512 / BF16 / FP16 / AMX flags), thread counts, library versions, the OpenBLAS
kernel tessera chose, and the table. The page is this script's output, not to be edited by hand.

PyTorch on the development machines: Debian's python3-torch (CPU); on the GPU machines: the
image's own. Timings are medians of repeated runs after warm-up on both sides (tessera: the median
of --repetitions Google Benchmark repetitions; PyTorch: of at least 5 timed calls); CUDA timings
use events. Medians, because the shared development machines are noisy (single runs move by 20-40%).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time


def torch_time(fn, device, min_time=0.5, warmup=3):
    import torch

    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    samples = []
    deadline = time.perf_counter() + min_time
    while time.perf_counter() < deadline or len(samples) < 5:
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def torch_case(name, args, device):
    import torch

    torch.manual_seed(0)
    if name == "BM_Add":
        n = args["n"]
        a, b = torch.rand(n, device=device), torch.rand(n, device=device)
        return lambda: torch.add(a, b)
    if name == "BM_Sum":
        a = torch.rand(args["n"], device=device)
        return lambda: a.sum()
    if name == "BM_Copy":
        a, c = torch.rand(args["n"], device=device), torch.empty(args["n"], device=device)
        return lambda: c.copy_(a)
    if name in ("BM_Mean", "BM_Amax", "BM_Argmax"):
        a = torch.randn(args["n"], device=device)
        return {"BM_Mean": lambda: a.mean(), "BM_Amax": lambda: a.amax(), "BM_Argmax": lambda: a.argmax()}[name]
    if name == "BM_LogSoftmaxRows":
        x = torch.randn(args["rows"], args["cols"], device=device)
        return lambda: torch.log_softmax(x, -1)
    if name == "BM_CrossEntropy":
        x = torch.randn(args["rows"], args["cols"], device=device)
        t = torch.randint(0, args["cols"], (args["rows"],), device=device)
        return lambda: torch.nn.functional.cross_entropy(x, t)
    if name == "BM_SoftmaxRows":
        x = torch.randn(args["rows"], args["cols"], device=device)
        return lambda: torch.softmax(x, -1)
    if name == "BM_Matmul":
        n = args["n"]
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        return lambda: a @ b
    fn = vision_case(name, args, device)
    return fn if fn is not None else model_case(name, args, device)


def fwd_or_fwdbwd(fn, leaves, backward):
    import torch

    if not backward:
        return fn

    def both():
        for leaf in leaves:
            leaf.grad = None
        with torch.enable_grad():
            out = fn()
            out.backward(torch.ones_like(out))
        return out

    return both


def vision_case(name, args, device):
    import torch
    import torch.nn.functional as F
    import torchvision

    bwd = bool(args.get("bwd", 0))
    if name == "BM_RoiAlign":
        feats = torch.randn(2, 256, 200, 272, device=device, requires_grad=bwd)
        n = 1024
        batch = torch.randint(0, 2, (n, 1), device=device).float()
        xy = torch.rand(n, 2, device=device) * 700
        wh = torch.rand(n, 2, device=device) * 384 + 16
        rois = torch.cat([batch, xy, xy + wh], 1)
        fn = lambda: torchvision.ops.roi_align(feats, rois, (7, 7), 0.25, 2, True)
        return fwd_or_fwdbwd(fn, [feats], bwd)
    if name == "BM_Nms":
        n = args["n"]
        c = torch.rand(n, 2, device=device) * 1000
        s = torch.rand(n, 2, device=device) * 90 + 10
        boxes = torch.cat([c - s / 2, c + s / 2], 1)
        scores = torch.rand(n, device=device)
        return lambda: torchvision.ops.nms(boxes, scores, 0.5)
    if name == "BM_Bilinear":
        x = torch.randn(1, 3, 600, 800, device=device, requires_grad=bwd)
        fn = lambda: F.interpolate(x, size=(768, 1024), mode="bilinear", align_corners=False)
        return fwd_or_fwdbwd(fn, [x], bwd)
    if name == "BM_Conv3x3":
        torch.backends.cudnn.benchmark = bool(args.get("find", 0))
        x = torch.randn(1, 64, 284, 284, device=device, requires_grad=bwd)
        w = (torch.randn(64, 64, 3, 3, device=device) * 0.05).requires_grad_(bwd)
        b = torch.zeros(64, device=device, requires_grad=bwd)
        fn = lambda: F.conv2d(x, w, b, 1, 1)
        return fwd_or_fwdbwd(fn, [x, w, b], bwd)
    if name == "BM_MaxPool2x2":
        x = torch.randn(1, 64, 568, 568, device=device)
        return lambda: F.max_pool2d(x, 2)
    return None


def torch_unet(width, depth=4, in_channels=1, classes=2):
    """The 2015 U-Net as models/unet.cpp builds it: unpadded 3x3 convolutions, 2x2 up-convolutions,
    crop-and-concatenate, a 1x1 head (no dropout: the benchmark times the same work on both sides)."""
    import torch
    import torch.nn as nn

    def double(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [width << l for l in range(depth + 1)]
            self.enc = nn.ModuleList([double(in_channels if l == 0 else chans[l - 1], chans[l]) for l in range(depth)])
            self.bottom = double(chans[depth - 1], chans[depth])
            self.up = nn.ModuleList([nn.ConvTranspose2d(chans[l + 1], chans[l], 2, 2) for l in reversed(range(depth))])
            self.dec = nn.ModuleList([double(2 * chans[l], chans[l]) for l in reversed(range(depth))])
            self.head = nn.Conv2d(width, classes, 1)

        def forward(self, x):
            skips = []
            for block in self.enc:
                x = block(x)
                skips.append(x)
                x = torch.nn.functional.max_pool2d(x, 2)
            x = self.bottom(x)
            for up, block, skip in zip(self.up, self.dec, reversed(skips)):
                x = up(x)
                o = (skip.shape[-1] - x.shape[-1]) // 2
                x = block(torch.cat([skip[..., o:o + x.shape[-2], o:o + x.shape[-1]], x], 1))
            return self.head(x)

    return UNet()


def maskrcnn_case(name, args, device):
    """torchvision's maskrcnn_resnet50_fpn at 512 x 512 with random weights, as bench_models.cpp:
    score threshold 0 (100 detections through the mask head), two images with three boxes each
    for the training step (batch norm frozen, as tessera's detection backbone)."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=512, max_size=512, box_score_thresh=0.0)

    # As with pretrained weights (and tessera's defaults): FrozenBatchNorm2d, conv1 and layer1 frozen.
    def freeze(module):
        for name, child in module.named_children():
            if isinstance(child, torch.nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features)
                for k in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, k).copy_(getattr(child, k).detach())
                setattr(module, name, frozen)
            else:
                freeze(child)

    freeze(model.backbone.body)
    for n, p in model.backbone.body.named_parameters():
        if n.startswith("conv1") or n.startswith("layer1"):
            p.requires_grad_(False)
    model = model.to(device)
    g = torch.Generator().manual_seed(20)
    images = [torch.rand(3, 512, 512, generator=g).to(device) for _ in range(2)]
    boxes = torch.tensor([[40, 60, 200, 220], [250, 100, 480, 300], [100, 320, 260, 500]], dtype=torch.float32)
    masks = torch.zeros(3, 512, 512, dtype=torch.uint8)
    for k, b in enumerate(boxes.int().tolist()):
        masks[k, b[1]:b[3], b[0]:b[2]] = 1
    targets = [{"boxes": boxes.to(device), "labels": torch.tensor([1, 5, 17], device=device), "masks": masks.to(device)}
               for _ in range(2)]
    if name == "BM_MaskRCNNInference":
        model.eval()

        def infer():
            with torch.no_grad():
                return model([images[0]])

        return infer
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step():
        with torch.enable_grad():
            opt.zero_grad()
            loss = sum(model(images, targets).values())
            loss.backward()
            opt.step()
        return loss

    return step


def model_case(name, args, device):
    import torch
    import torch.nn.functional as F

    if name.startswith("BM_MaskRCNN"):
        return maskrcnn_case(name, args, device)
    base = name[:-4] if name.endswith("Bf16") else name
    if base not in ("BM_UNetTrainStep", "BM_UNetInference"):
        return None
    amp = name.endswith("Bf16")  # PyTorch's autocast to bfloat16 on the same device

    def autocast():
        import contextlib
        return torch.autocast(device_type=device, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    net = torch_unet(args["width"]).to(device)
    tile, batch = args["tile"], args["batch"]
    x = torch.randn(batch, 1, tile, tile, device=device)
    with torch.no_grad():
        out = net(x[:1]).shape[-1]
    target = torch.randint(0, 2, (batch, out, out), device=device)
    weight = torch.rand(batch, out, out, device=device) * 2.5 + 0.5
    if base == "BM_UNetInference":
        net.eval()

        def infer():
            with torch.no_grad(), autocast():
                return net(x)

        return infer
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.99)

    def step():
        with torch.enable_grad():
            opt.zero_grad()
            with autocast():
                loss = (F.cross_entropy(net(x), target, reduction="none") * weight).mean()
            loss.backward()
            opt.step()
        return loss

    return step


def best_openblas_coretype():
    """The kernel family this CPU's flags call for, by tessera's rule (kernels/cpu/blas.cpp)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return ""
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags):
        return "SkylakeX"
    if {"avx2", "fma"} <= set(flags):
        return "Haswell"
    return ""


def parse(bench_name):
    parts = bench_name.split("/")
    args = {}
    for p in parts[1:]:
        m = re.match(r"(\w+):(\d+)$", p)
        if m:
            args[m.group(1)] = int(m.group(2))
    return parts[0], args


def to_ms(value, unit):
    return value * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--tessera-json", help="tessera_bench --benchmark_format=json output to read instead of running it")
    ap.add_argument("--bench", default="build/bench/tessera_bench")
    ap.add_argument("--filter", default="", help="--benchmark_filter for tessera_bench")
    ap.add_argument("--repetitions", type=int, default=5, help="tessera_bench repetitions (the median is compared)")
    ap.add_argument("--markdown", help="also write the results as a markdown page (docs/performance.md)")
    args = ap.parse_args()

    threads = int(os.environ.get("TESSERA_NUM_THREADS", os.cpu_count() or 1))
    # Both sides load OpenBLAS (PyTorch for its matmuls). tessera chooses its kernels for this CPU
    # by itself (kernels/cpu/blas.cpp); PyTorch gets the same choice here, before torch is imported,
    # so that neither runs the SSE3 kernels an OpenBLAS older than the CPU falls back to.
    tessera_env = dict(os.environ)  # tessera_bench runs with the environment as the user left it
    if not os.environ.get("OPENBLAS_CORETYPE"):
        core = best_openblas_coretype()
        if core:
            os.environ["OPENBLAS_CORETYPE"] = core
            print(f"PyTorch's OpenBLAS: OPENBLAS_CORETYPE={core} (this CPU's vector units; tessera chooses the same itself)")
    if args.tessera_json:
        with open(args.tessera_json) as f:
            report = json.load(f)
    else:
        cmd = [args.bench, "--benchmark_format=json", f"--benchmark_repetitions={max(1, args.repetitions)}"]
        if args.filter:
            cmd.append(f"--benchmark_filter={args.filter}")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=tessera_env)
        report = json.loads(out.stdout)

    if "cpu_blas" in report.get("context", {}):
        print(f"tessera: {report['context']['cpu_blas']}")
    try:
        import torch
    except ImportError:
        print("compare_torch: PyTorch is not installed (Debian: apt-get install python3-torch); tessera only:")
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        print(f"PyTorch {torch.__version__}, {threads} CPU threads" +
              (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
        if torch.cuda.is_available():
            # tessera's CUDA float32 is full float32 (cuBLAS default math, cuDNN CUDNN_FMA_MATH):
            # PyTorch is held to the same, whatever its version's default.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            for knob in ("torch.backends.cuda.matmul", "torch.backends.cudnn.conv"):
                try:
                    obj = eval(knob)
                    if hasattr(obj, "fp32_precision"):
                        obj.fp32_precision = "ieee"
                except AttributeError:
                    pass
            print("TF32: off on both sides (tessera: cuBLAS default math, cuDNN CUDNN_FMA_MATH; PyTorch: "
                  f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
                  f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32})")

    # One entry per benchmark: the median aggregate when there were repetitions, else the run itself.
    chosen = {}
    for b in report["benchmarks"]:
        if b.get("error_occurred"):
            continue
        key = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                chosen[key] = b
        else:
            chosen.setdefault(key, b)
    rows = []
    for key, b in chosen.items():
        b = dict(b, name=key)
        name, bargs = parse(b["name"])
        device = "cuda" if bargs.get("cuda") else "cpu"
        if args.device != "all" and device != args.device:
            continue
        ours = to_ms(b["real_time"], b["time_unit"])
        theirs = None
        if torch is not None and (device == "cpu" or torch.cuda.is_available()):
            fn = torch_case(name, bargs, device)
            if fn is not None:
                theirs = torch_time(fn, device)
        rows.append((b["name"].replace("/real_time", ""), ours, theirs))

    print(f"{'benchmark':<48} {'tessera ms':>11} {'torch ms':>10} {'ratio':>7}")
    for name, ours, theirs in rows:
        ratio = f"{ours / theirs:7.2f}" if theirs else "      -"
        t = f"{theirs:10.3f}" if theirs else "         -"
        print(f"{name:<48} {ours:11.3f} {t} {ratio}")
    if args.markdown:
        write_markdown(args, report, rows, threads, torch)
        print(f"wrote {args.markdown}")
    return 0


# What each benchmark times, for the page (its arguments follow the name).
DESCRIPTIONS = {
    "BM_Add": "add, float32 (fresh output)", "BM_Sum": "sum, float32", "BM_Copy": "copy, float32 (read + write)",
    "BM_Mean": "mean, float32", "BM_Amax": "amax, float32", "BM_Argmax": "argmax, float32",
    "BM_SoftmaxRows": "softmax over rows", "BM_LogSoftmaxRows": "log_softmax over rows",
    "BM_CrossEntropy": "cross-entropy (mean) over rows", "BM_Matmul": "matmul float32", "BM_MatmulBf16": "matmul bfloat16",
    "BM_RoiAlign": "roi_align 2×256×200×272, 1024 rois, 7×7", "BM_Bilinear": "bilinear 1×3×600×800 → 768×1024",
    "BM_Conv3x3": "conv2d 3×3 64→64 on 1×64×284×284", "BM_Nms": "nms", "BM_MaxPool2x2": "max_pool2d 2×2 on 1×64×568×568",
    "BM_LoaderCells": "DataLoader, synthetic cells", "BM_LoaderShapes": "DataLoader, synthetic shapes",
    "BM_UNetTrainStep": "**U-Net training step**", "BM_UNetInference": "**U-Net inference**",
    "BM_UNetTrainStepBf16": "**U-Net training step, bfloat16 autocast**", "BM_UNetInferenceBf16": "**U-Net inference, bfloat16 autocast**",
    "BM_MaskRCNNInference": "**Mask R-CNN R50-FPN inference**", "BM_MaskRCNNTrainStep": "**Mask R-CNN R50-FPN training step**",
}


def cpu_facts():
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    yes = lambda f: "yes" if f in flags else "no"
    return model, (f"AVX2 {yes('avx2')}, AVX-512F {yes('avx512f')}, AVX512-BF16 {yes('avx512_bf16')}, "
                   f"AVX512-FP16 {yes('avx512fp16')}, AMX-BF16 {yes('amx_bf16')} (as /proc/cpuinfo shows them)")


def write_markdown(args, report, rows, threads, torch):
    import datetime
    import platform
    model, flags = cpu_facts()
    ctx = report.get("context", {})
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    try:
        import torchvision
        tv = torchvision.__version__
    except ImportError:
        tv = "not installed"
    lines = [
        "# Performance",
        "",
        f"Written by `scripts/compare_torch.py --markdown {args.markdown}` on "
        f"{datetime.date.today().isoformat()}; rerun it to update this page (it is not edited by hand).",
        "",
        "## The machine and the libraries",
        "",
        f"- CPU: {model}, {os.cpu_count()} logical CPUs; {flags}",
        f"- threads: tessera {ctx.get('num_cpus', '?')} CPUs seen, `TESSERA_NUM_THREADS`="
        f"{os.environ.get('TESSERA_NUM_THREADS', 'unset')}; PyTorch {threads} threads",
        f"- tessera {commit}, `{args.bench}`; {ctx.get('cpu_blas', 'BLAS unknown')}; bfloat16 GEMM: {ctx.get('cpu_bf16', 'unknown')}",
        f"- PyTorch {torch.__version__ if torch is not None else 'not installed'}, torchvision {tv}, Python {platform.python_version()}"
        + (f"; PyTorch's OpenBLAS with OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}" if os.environ.get("OPENBLAS_CORETYPE") else ""),
        "",
        "## tessera beside PyTorch",
        "",
        "Ratio = tessera's time / PyTorch's, below 1 is faster. Medians: tessera of "
        f"{max(1, args.repetitions)} Google Benchmark repetitions, PyTorch of at least 5 timed calls after warm-up, "
        "in the same run on the same machine (shared hosts move by 20–40% between runs). "
        "\"fwd+bwd\" rows time the forward and the backward of sum(out); model rows are `bench/bench_models.cpp` and "
        "the same networks built in PyTorch/torchvision by this script (U-Net training step: forward, pixel-weighted "
        "cross-entropy, backward, SGD; Mask R-CNN: ResNet-50-FPN with random weights, frozen BatchNorm and conv1/layer1, "
        "score threshold 0 so that both keep 100 detections).",
        "",
        "| benchmark | arguments | tessera ms | PyTorch ms | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for name, ours, theirs in rows:
        base, _, rest = name.partition("/")
        desc = DESCRIPTIONS.get(base, base)
        arguments = rest.replace("cuda:0/", "").replace("cuda:1/", "CUDA, ").replace("bwd:0", "fwd").replace("bwd:1", "fwd+bwd")
        ratio = f"{ours / theirs:.2f}" if theirs else "–"
        lines.append(f"| {desc} | {arguments} | {ours:.3g} | {f'{theirs:.3g}' if theirs else '–'} | {ratio} |")
    lines += [
        "",
        "## Where the time goes",
        "",
        "The CPU's 3×3 stride-1 convolutions with 16 or more channels use Winograd F(2×2, 3×3) "
        "(`kernels/cpu/winograd.cpp`, 2.25× fewer multiplications than im2col; `TESSERA_CPU_WINOGRAD=0` compares); "
        "ResNet's FrozenBatchNorm runs in the convolution's epilogue; bfloat16 convolutions run direct through "
        "tessera's AVX512-BF16 GEMM where the CPU has it (see [library.md](library.md#reduced-precision-bfloat16-float16)). "
        "An OpenBLAS older than the CPU loads its SSE3 kernels; tessera picks the kernel family from the CPU's flags "
        "itself and this script gives PyTorch's OpenBLAS the same choice (the line it prints).",
        "",
    ]
    # The COCO section belongs to scripts/compare_coco_eval.py --markdown: kept as it is.
    section = "## COCO evaluation beside pycocotools"
    if os.path.exists(args.markdown):
        old = open(args.markdown).read()
        at = old.find(section)
        if at >= 0:
            end = old.find("\n## ", at + len(section))
            lines += [old[at:end if end >= 0 else len(old)].rstrip("\n"), ""]
    tmp = args.markdown + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
