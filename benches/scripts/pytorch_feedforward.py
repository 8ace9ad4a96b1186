"""Times Johnson et al.'s feed-forward network in PyTorch, built as stylize builds it, so that
`stylize bench --apply` and `stylize bench --train` have a baseline measured on the same machine
in the same session. PyTorch is never a dependency of stylize; this script is for comparison only.

    pip install torch torchvision
    python3 benches/scripts/pytorch_feedforward.py --threads 2 --width 32 --apply 256 512 1024
    python3 benches/scripts/pytorch_feedforward.py --threads 2 --width 16 --train 256
    python3 benches/scripts/pytorch_feedforward.py --threads 2 --width 16 --train 256 --border 16

With --border 16 it does the work stylize does: `apply` and `train` mirror 16 pixels around each
picture or crop before the network and cut them off its output (stylize-cli/src/apply.rs).

The network (nn/src/transformer.rs): reflection-padded 9x9 conv, two stride-2 3x3 convs, five
residual blocks, two nearest-upsample + 3x3 conv stages and a 9x9 conv, instance norm (affine) and
ReLU after every conv but the last, its output scaled and bounded by a tanh to the picture's
range (`--output-range soft`, as `stylize train` makes them since 2026-11-28; in stylize the
bound takes 0.4 ms of a 512² pass, benches/README.md), or with the scale alone
(`--output-range clamp`, as the shipped models do, which `stylize bench --apply` runs). The
training step is the one `stylize bench --train` times:
batch 1, the network forward, VGG19 to relu5_1 for the content (relu4_2) and style (relu1_1 ..
relu5_1) losses, backward, and Adam. VGG19's weights are random here (only the time matters), and
frozen, as ours are. Prints one JSON object per measurement: the median of --repeats timings
after a warm-up run.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride=1, upsample=False):
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(self.pad(x))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.n1 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.c2, self.n2 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return x + self.n2(self.c2(F.relu(self.n1(self.c1(x)))))


class Transformer(nn.Module):
    def __init__(self, w, output_range="soft"):
        super().__init__()
        self.bounded = output_range == "soft"
        block = lambda cin, cout, k, **kw: nn.Sequential(  # noqa: E731
            ConvLayer(cin, cout, k, **kw), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()
        )
        self.net = nn.Sequential(
            block(3, w, 9),
            block(w, 2 * w, 3, stride=2),
            block(2 * w, 4 * w, 3, stride=2),
            *[Residual(4 * w) for _ in range(5)],
            block(4 * w, 2 * w, 3, upsample=True),
            block(2 * w, w, 3, upsample=True),
            ConvLayer(w, 3, 9),
        )

    def forward(self, x):
        y = 128.0 * self.net(x)
        if not self.bounded:
            return y
        # The output bounded to a picture's range per channel in VGG's space (BGR minus the
        # ImageNet mean), as stylize's networks since arch johnson2016-sb end (OutputRange::Soft).
        mid = (127.5 - torch.tensor([103.939, 116.779, 123.68])).view(1, 3, 1, 1)
        return mid + 127.5 * torch.tanh((y - mid) / 127.5)


def vgg19_to_relu5_1():
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    vgg = nn.Sequential(*layers)
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg


# Indices (in the Sequential above) of relu1_1, relu2_1, relu3_1, relu4_1, relu4_2, relu5_1.
STYLE = [1, 6, 11, 20, 29]
CONTENT = 22


def features(vgg, x):
    out = {}
    for i, layer in enumerate(vgg):
        x = layer(x)
        if i in STYLE or i == CONTENT:
            out[i] = x
    return out


def gram(f):
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def timed(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--apply", type=int, nargs="*", default=[], metavar="PX", help="square sides to time a forward pass at")
    ap.add_argument("--train", type=int, nargs="*", default=[], metavar="PX", help="square sides to time a training step at")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--border",
        type=int,
        default=0,
        metavar="PX",
        help="mirror PX pixels around each input and cut them off the output, as stylize's apply and train do (16)",
    )
    ap.add_argument(
        "--output-range",
        choices=["soft", "clamp"],
        default="soft",
        help="end with the bound (soft, stylize train's default) or the scaled output alone (clamp, the shipped models)",
    )
    args = ap.parse_args()
    b = args.border

    def bordered(x):
        """The network on x mirrored by the border, the border cut off again."""
        if b == 0:
            return net(x)
        return net(F.pad(x, (b, b, b, b), mode="reflect"))[..., b:-b, b:-b]

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = Transformer(args.width, args.output_range)
    params = sum(p.numel() for p in net.parameters())
    common = {
        "torch": torch.__version__,
        "threads": args.threads,
        "width": args.width,
        "params": params,
        "border": b,
        "output_range": args.output_range,
    }
    for px in args.apply:
        x = torch.rand(1, 3, px, px) * 255 - 128

        def forward():
            with torch.inference_mode():
                bordered(x)

        median, times = timed(forward, args.repeats)
        print(json.dumps({"what": "apply", "size": px, "seconds": median, "all": times, **common}))
    if args.train:
        vgg = vgg19_to_relu5_1()
        adam = torch.optim.Adam(net.parameters(), lr=1e-3)
    for px in args.train:
        photo = torch.rand(1, 3, px, px) * 255 - 128
        with torch.no_grad():
            target = features(vgg, photo)[CONTENT]
            style = {i: gram(f) for i, f in features(vgg, torch.rand(1, 3, px, px) * 255 - 128).items() if i in STYLE}

        def step():
            adam.zero_grad()
            y = bordered(photo)
            f = features(vgg, y)
            loss = F.mse_loss(f[CONTENT], target)
            for i in STYLE:
                c = f[i].shape[1]
                loss = loss + 10.0 / c**2 * F.mse_loss(gram(f[i]), style[i])
            tv = (y[..., 1:, :] - y[..., :-1, :]).pow(2).mean() + (y[..., 1:] - y[..., :-1]).pow(2).mean()
            loss = loss + 1e-3 * tv
            loss.backward()
            adam.step()

        median, times = timed(step, args.repeats)
        print(json.dumps({"what": "train_step", "size": px, "batch": 1, "seconds": median, "all": times, **common}))


if __name__ == "__main__":
    main()
