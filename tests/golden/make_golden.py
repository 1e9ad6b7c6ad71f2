#!/usr/bin/python3
"""Golden values for the C++ tests, computed independently with Debian's python3-torch (1.13)
and numpy, written to tests/fixtures/golden.h5. The C++ tests read this file and compare.

Regenerate (only when adding cases; never from the C++ implementation's output):
    /usr/bin/python3 tests/golden/make_golden.py tests/fixtures/golden.h5
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)  # references in double; C++ compares float32 results


def put(g, name, value):
    g.create_dataset(name, data=np.asarray(value))


def optimizers(root):
    """Parameters after each of T steps of torch.optim on a fixed gradient sequence."""
    T = 5
    p0 = torch.randn(4, 3)
    grads = torch.randn(T, 4, 3)
    lrs = [0.1, 0.05, 0.2, 0.01, 0.1]
    cases = {
        "sgd_plain": (torch.optim.SGD, dict(momentum=0.0)),
        "sgd_momentum": (torch.optim.SGD, dict(momentum=0.9)),
        "sgd_momentum_dampening_wd": (torch.optim.SGD, dict(momentum=0.8, dampening=0.3, weight_decay=0.01)),
        "sgd_nesterov_wd": (torch.optim.SGD, dict(momentum=0.9, nesterov=True, weight_decay=5e-4)),
        "adam": (torch.optim.Adam, dict(betas=(0.9, 0.999), eps=1e-8)),
        "adam_wd": (torch.optim.Adam, dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
        "adamw": (torch.optim.AdamW, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)),
    }
    for name, (cls, kw) in cases.items():
        g = root.create_group("optim/" + name)
        p = p0.clone().requires_grad_(True)
        opt = cls([p], lr=lrs[0], **kw)
        out = []
        for t in range(T):
            for group in opt.param_groups:
                group["lr"] = lrs[t]
            p.grad = grads[t].clone()
            opt.step()
            out.append(p.detach().clone())
        put(g, "p0", p0)
        put(g, "grads", grads)
        put(g, "lrs", lrs)
        put(g, "expected", torch.stack(out))
        g.attrs["kind"] = {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw"}[cls]
        for k, v in kw.items():
            if k == "betas":
                g.attrs["beta1"], g.attrs["beta2"] = v
            else:
                g.attrs[k] = float(v)


def schedules(root):
    """Learning rates from torch.optim.lr_scheduler (warm-up by LinearLR, then the decay)."""
    base, total = 0.1, 40

    def run(make, steps):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=base)
        sched = make(opt)
        lrs = []
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs

    g = root.create_group("schedule")
    put(g, "step", run(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5), total))
    put(g, "cosine", run(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.001), total))
    warm = 8
    w = run(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0 / warm, end_factor=1.0,
                                                        total_iters=warm - 1), warm)
    c = run(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - warm, eta_min=0.0), total - warm)
    put(g, "warmup_cosine", w + c)
    g.attrs["base"], g.attrs["total"], g.attrs["warmup"] = base, total, warm


def label_smoothing(root):
    g = root.create_group("label_smoothing")
    logits = torch.randn(6, 5, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    s = 0.1
    loss = F.cross_entropy(logits, labels, label_smoothing=s)  # torch's own implementation
    loss.backward()
    put(g, "logits", logits.detach())
    put(g, "labels", labels)
    put(g, "loss", loss.item())
    put(g, "grad", logits.grad)
    g.attrs["smoothing"] = s


def mixup(root):
    """Mixup on a linear classifier with explicit lam and permutation, with and without label
    smoothing: loss = lam * CE(f(x~), y) + (1 - lam) * CE(f(x~), y[perm])."""
    n, d, k = 6, 4, 3
    x = torch.randn(n, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    W0 = torch.randn(k, d)
    b0 = torch.randn(k)
    lam = 0.3
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    for name, s in (("plain", 0.0), ("smoothed", 0.1)):
        g = root.create_group("mixup/" + name)
        W = W0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        xm = lam * x + (1 - lam) * x[perm]
        logits = xm.reshape(n, -1) @ W.T + b
        loss = lam * F.cross_entropy(logits, y, label_smoothing=s) + \
            (1 - lam) * F.cross_entropy(logits, y[perm], label_smoothing=s)
        loss.backward()
        put(g, "x", x)
        put(g, "y", y)
        put(g, "W", W0)
        put(g, "b", b0)
        put(g, "perm", perm)
        put(g, "loss", loss.item())
        put(g, "grad_W", W.grad)
        put(g, "grad_b", b.grad)
        g.attrs["lam"], g.attrs["smoothing"] = lam, s


def calibration(root):
    """ECE with 15 equal-width bins (lo, hi], computed in numpy."""
    g = root.create_group("ece")
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(200, 5)) * 2.0
    labels = rng.integers(0, 5, size=200)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf, pred = p.max(1), p.argmax(1)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0, 1, 16)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    nll = -np.log(p[np.arange(200), labels]).mean()
    put(g, "logits", logits.astype(np.float32))
    put(g, "labels", labels.astype(np.int64))
    put(g, "ece", ece)
    put(g, "accuracy", correct.mean())
    put(g, "nll", nll)
    put(g, "mean_confidence", conf.mean())


def multi_sample_dropout(root):
    """L = mean_m CE(W (h * mask_m) + b, y) with explicit masks; also the wrong variant
    (cross-entropy of the mean logits) so the C++ test can show it differs."""
    g = root.create_group("multi_sample_dropout")
    n, d, k, m, p = 5, 6, 3, 4, 0.5
    h = torch.randn(n, d, requires_grad=True)
    W = torch.randn(k, d, requires_grad=True)
    b = torch.randn(k, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1, 0])
    masks = (torch.rand(m, n, d) > p).double() / (1 - p)
    losses = [F.cross_entropy((h * masks[i]) @ W.T + b, y) for i in range(m)]
    loss = sum(losses) / m
    loss.backward()
    with torch.no_grad():
        wrong = F.cross_entropy(sum((h * masks[i]) @ W.T + b for i in range(m)) / m, y)
    for name, v in (("h", h), ("W", W), ("b", b)):
        put(g, name, v.detach())
        put(g, "grad_" + name, v.grad)
    put(g, "y", y)
    put(g, "masks", masks)
    put(g, "loss", loss.item())
    put(g, "wrong_variant_loss", wrong.item())


def ghost_batch_norm(root):
    """Ghost batch norm written out by hand: torch.chunk into ceil(N/g) chunks, per-chunk mean
    and biased variance, running statistics updated per chunk with the unbiased variance and
    momentum (per_chunk) or momentum / chunks (scaled)."""
    cases = {"conv_uneven": (10, 3, (2, 2), 4), "linear_even": (8, 4, (), 4)}
    for name, (n, c, spatial, gsize) in cases.items():
        x0 = torch.randn(n, c, *spatial) * 2 + 0.5
        w0 = torch.rand(c) + 0.5
        b0 = torch.randn(c)
        rm0 = torch.randn(c) * 0.1
        rv0 = torch.rand(c) + 0.5
        R = torch.randn(n, c, *spatial)
        for stats in ("per_chunk", "scaled"):
            g = root.create_group(f"ghost_batch_norm/{name}_{stats}")
            x = x0.clone().requires_grad_(True)
            w = w0.clone().requires_grad_(True)
            b = b0.clone().requires_grad_(True)
            rm, rv = rm0.clone(), rv0.clone()
            chunks = torch.chunk(x, math.ceil(n / gsize), 0)
            mom = 0.1 if stats == "per_chunk" else 0.1 / len(chunks)
            dims = [0] + list(range(2, x.dim()))
            shape = [1, c] + [1] * len(spatial)
            outs = []
            for ch in chunks:
                mean = ch.mean(dims)
                var_b = ch.var(dims, unbiased=False)
                var_u = ch.var(dims, unbiased=True)
                outs.append((ch - mean.view(shape)) / torch.sqrt(var_b.view(shape) + 1e-5) * w.view(shape) + b.view(shape))
                rm = (1 - mom) * rm + mom * mean.detach()
                rv = (1 - mom) * rv + mom * var_u.detach()
            y = torch.cat(outs, 0)
            (y * R).sum().backward()
            for key, v in (("x", x0), ("weight", w0), ("bias", b0), ("running_mean0", rm0), ("running_var0", rv0),
                           ("R", R), ("y", y.detach()), ("running_mean", rm), ("running_var", rv),
                           ("grad_x", x.grad), ("grad_weight", w.grad), ("grad_bias", b.grad)):
                put(g, key, v)
            g.attrs["ghost_size"] = gsize
            g.attrs["chunks"] = len(chunks)


def ssa(root):
    """Attention of each query over its kept keys only, query by query with explicit loops:
    keys = the query group's kept set, minus keys after the query and plus the query itself when
    causal; softmax(q.k / sqrt(d)) over those keys, weighted sum of their values."""
    b, h, n, d = 2, 2, 7, 3
    q, k, v = torch.randn(b, h, n, d), torch.randn(b, h, n, d), torch.randn(b, h, n, d)
    cases = {
        "uniform": [(0, 7, [1, 3, 4])],
        "local": [(0, 4, [0, 1, 2, 3, 5]), (4, 7, [2, 3, 4, 5, 6])],
    }
    for name, groups in cases.items():
        for causal in (False, True):
            g = root.create_group(f"ssa/{name}_{'causal' if causal else 'full'}")
            out = torch.zeros(b, h, n, d)
            for begin, end, keys in groups:
                for i in range(begin, end):
                    ks = [j for j in keys if not causal or j < i] + ([i] if causal else [])
                    ks = sorted(set(ks))
                    logits = (q[:, :, i:i + 1, :] * k[:, :, ks, :]).sum(-1) / math.sqrt(d)  # [b, h, |ks|]
                    p = torch.softmax(logits, -1)
                    out[:, :, i, :] = (p.unsqueeze(-1) * v[:, :, ks, :]).sum(-2)
            put(g, "q", q)
            put(g, "k", k)
            put(g, "v", v)
            put(g, "out", out)
            put(g, "begin", [gr[0] for gr in groups])
            put(g, "end", [gr[1] for gr in groups])
            for idx, gr in enumerate(groups):
                put(g, f"keys{idx}", gr[2])
            g.attrs["causal"] = int(causal)


def soups(root):
    """Uniform soup and WiSE-FT interpolation of three small state dicts (float entries averaged
    or interpolated, the integer counter copied), and greedy soup selection on a table of soup
    scores per member set, with ties, under both acceptance rules."""
    g = root.create_group("soups")
    states = [{"w": torch.randn(3, 2).float(), "b": torch.randn(2).float(), "n": torch.tensor(5 + i)} for i in range(3)]
    for i, st in enumerate(states):
        for k, v in st.items():
            put(g, f"state{i}/{k}", v)
    put(g, "uniform/w", sum(st["w"].double() for st in states) / 3)
    put(g, "uniform/b", sum(st["b"].double() for st in states) / 3)
    for alpha in (0.0, 0.3, 1.0):
        put(g, f"wise_{alpha}/w", (1 - alpha) * states[0]["w"].double() + alpha * states[1]["w"].double())
    # Scores of the soup of each member set (bitmask over 4 candidates). Candidate order by
    # individual score: 2 (0.80), then 0 and 3 tied at 0.70 (input order breaks the tie), then 1.
    table = {0b0001: 0.70, 0b0010: 0.60, 0b0100: 0.80, 0b1000: 0.70,
             0b0101: 0.80,   # {2, 0}: equal to the best so far -> kept with >=, refused with >
             0b1100: 0.82, 0b1101: 0.79,
             0b0110: 0.81, 0b0111: 0.85, 0b1110: 0.83, 0b1111: 0.84}
    scores = np.full(16, -1.0)
    for mask, v in table.items():
        scores[mask] = v
    put(g, "greedy/table", scores)

    def greedy(strict):
        individual = [scores[1 << i] for i in range(4)]
        order = sorted(range(4), key=lambda i: -individual[i])  # sorted() is stable: ties keep input order
        kept, best = [order[0]], individual[order[0]]
        for c in order[1:]:
            s = scores[sum(1 << m for m in kept + [c])]
            if (s > best) if strict else (s >= best):
                kept, best = kept + [c], s
        return kept, best

    for strict in (False, True):
        kept, best = greedy(strict)
        put(g, f"greedy/kept_{'strict' if strict else 'geq'}", kept)
        put(g, f"greedy/score_{'strict' if strict else 'geq'}", best)


def fisher(root):
    """Diagonal empirical Fisher (mean of squared per-example gradients of the cross-entropy)
    of a one-hidden-layer MLP for two weight settings, and the Fisher-weighted interpolation."""
    g = root.create_group("fisher")
    x = torch.randn(6, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    put(g, "x", x)
    put(g, "y", y)
    thetas, fishers = [], []
    for m in range(2):
        p = {"trunk.fc0.weight": torch.randn(3, 4), "trunk.fc0.bias": torch.randn(3),
             "head.fc.weight": torch.randn(3, 3), "head.fc.bias": torch.randn(3)}
        f = {k: torch.zeros_like(v) for k, v in p.items()}
        for i in range(6):
            q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
            h = torch.relu(x[i].reshape(1, -1) @ q["trunk.fc0.weight"].T + q["trunk.fc0.bias"])
            loss = F.cross_entropy(h @ q["head.fc.weight"].T + q["head.fc.bias"], y[i:i + 1])
            loss.backward()
            for k in p:
                f[k] += q[k].grad ** 2 / 6
        for k in p:
            put(g, f"theta{m}/{k}", p[k])
            put(g, f"fisher{m}/{k}", f[k])
        thetas.append(p)
        fishers.append(f)
    a, eps = 0.3, 1e-8
    for k in thetas[0]:
        w0, w1 = (1 - a) * (fishers[0][k] + eps), a * (fishers[1][k] + eps)
        put(g, f"merged/{k}", (w0 * thetas[0][k] + w1 * thetas[1][k]) / (w0 + w1))
    g.attrs["alpha"] = a


def pruning(root):
    """Global magnitude pruning over three IMP phases with torch.nn.utils.prune.global_unstructured
    (L1Unstructured) on a conv and a linear weight, the weights perturbed between phases as
    retraining would; and the retraining schedule (linear warm-up, then linear decay to 0)."""
    import torch.nn.utils.prune as prune
    g = root.create_group("pruning")
    conv, lin = torch.nn.Conv2d(2, 3, 3).float(), torch.nn.Linear(12, 5).float()
    sparsity, phases = 0.8, 3
    amount = 1 - (1 - sparsity) ** (1 / phases)
    g.attrs["sparsity"], g.attrs["phases"] = sparsity, phases
    params = [(conv, "weight"), (lin, "weight")]
    for t in range(phases):
        put(g, f"phase{t}/conv", conv.weight.detach())
        put(g, f"phase{t}/linear", lin.weight.detach())
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
        put(g, f"phase{t}/conv_mask", conv.weight_mask)
        put(g, f"phase{t}/linear_mask", lin.weight_mask)
        with torch.no_grad():
            conv.weight_orig.add_(0.3 * torch.randn_like(conv.weight_orig))
            lin.weight_orig.add_(0.3 * torch.randn_like(lin.weight_orig))
    # Schedule of a 10-step phase with 20% warm-up at max lr 0.1.
    steps, warm, lr = 10, 2, 0.1
    put(g, "schedule", [lr * (i + 1) / warm if i < warm else lr * (steps - i) / (steps - warm) for i in range(steps)])


def fedspeed(root):
    """FedSpeed as the reference code (woodenchild95/FL-Simulator) runs it, written out plainly:
    two clients (one per domain, each batch the client's whole data), K local steps of
    ESAM-perturbed gradient + prox-correction c (h_i - w0), clipped, SGD with weight decay wd + c;
    h_i += w_K - w0; server w = mean w_K + mean h; lr decayed per round. Case "fedavg": rho = 0,
    c = 0 (no correction and no h), with clipping active."""
    g = root.create_group("fedspeed")
    x = torch.randn(6, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    put(g, "x", x)
    put(g, "y", y)
    put(g, "domains", [0, 0, 0, 1, 1, 1])
    w_init = {"trunk.fc0.weight": torch.randn(4, 4), "trunk.fc0.bias": torch.randn(4),
              "head.fc.weight": torch.randn(3, 4), "head.fc.bias": torch.randn(3)}
    for k, v in w_init.items():
        put(g, "init/" + k, v)
    names = list(w_init)

    def loss_of(p, xs, ys):
        hidden = torch.relu(xs.reshape(len(xs), -1) @ p["trunk.fc0.weight"].T + p["trunk.fc0.bias"])
        return F.cross_entropy(hidden @ p["head.fc.weight"].T + p["head.fc.bias"], ys)

    def grads(p, xs, ys):
        q = {k: v.detach().clone().requires_grad_(True) for k, v in p.items()}
        gs = torch.autograd.grad(loss_of(q, xs, ys), [q[k] for k in names])
        return dict(zip(names, gs))

    def run(rho, lamb, wd, lr, decay, max_norm, K, rounds):
        clients = [(x[:3], y[:3]), (x[3:], y[3:])]
        h = [{k: torch.zeros_like(v) for k, v in w_init.items()} for _ in clients]
        w = {k: v.clone() for k, v in w_init.items()}
        clipped = 0
        for t in range(rounds):
            lr_t = lr * decay ** t
            finals = []
            for i, (xs, ys) in enumerate(clients):
                p = {k: v.clone() for k, v in w.items()}
                for _ in range(K):
                    g1 = grads(p, xs, ys)
                    if rho > 0:
                        norm = torch.sqrt(sum((v ** 2).sum() for v in g1.values()))
                        g2 = grads({k: p[k] + rho * g1[k] / (norm + 1e-7) for k in names}, xs, ys)
                    else:
                        g2 = g1
                    total = {k: g2[k] + lamb * (h[i][k] - w[k]) for k in names}
                    tn = torch.sqrt(sum((v ** 2).sum() for v in total.values()))
                    coef = max_norm / (tn + 1e-6)
                    if coef < 1:
                        total = {k: v * coef for k, v in total.items()}
                        clipped += 1
                    p = {k: p[k] - lr_t * (total[k] + (wd + lamb) * p[k]) for k in names}
                finals.append(p)
                if lamb > 0:
                    h[i] = {k: h[i][k] + (p[k] - w[k]) for k in names}
            w = {k: sum(f[k] for f in finals) / len(finals) for k in names}
            if lamb > 0:
                w = {k: w[k] + sum(hh[k] for hh in h) / len(h) for k in names}
        return w, clipped

    cases = {"fedspeed": dict(rho=0.1, lamb=0.1, max_norm=10.0), "fedavg": dict(rho=0.0, lamb=0.0, max_norm=0.5)}
    for name, c in cases.items():
        w, clipped = run(wd=1e-3, lr=0.1, decay=0.998, K=2, rounds=2, **c)
        assert (clipped > 0) == (name == "fedavg"), (name, clipped)  # clipping exercised in one case
        for k, v in w.items():
            put(g, f"{name}/{k}", v)
        for k, v in c.items():
            g[name].attrs[k] = v


def lsq(root):
    """LSQ fake quantization, forward and gradients written out piecewise (not through autograd):
    dq/dx = 1 inside the range and 0 outside; dq/ds = round(v) - v inside, -Qn or Qp where
    clipped, times the gradient scale 1 / sqrt(n Qp)."""
    g = root.create_group("lsq")
    x = (torch.randn(64) * 2).float().double()
    u = torch.randn(64).float().double()   # upstream gradient
    put(g, "x", x)
    put(g, "upstream", u)
    for name, signed, bits, step in (("signed4", True, 4, 0.37), ("unsigned3", False, 3, 0.29)):
        qn, qp = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        scale = 1 / math.sqrt(64 * qp)
        v = x / step
        inside = (v >= -qn) & (v <= qp)
        q = torch.round(torch.clamp(v, -qn, qp)) * step
        dx = u * inside
        ds = (u * torch.where(inside, torch.round(v) - v, torch.where(v < -qn, torch.full_like(v, -qn), torch.full_like(v, qp)))).sum() * scale
        assert (~inside).any() and inside.any()
        sub = g.create_group(name)
        sub.attrs["bits"], sub.attrs["signed"], sub.attrs["step"] = bits, int(signed), step
        put(sub, "q", q)
        put(sub, "dx", dx)
        put(sub, "ds", ds)
        put(sub, "init", 2 * x.abs().mean() / math.sqrt(qp))


def sagm(root):
    """SAGM's two-pass direction on an MLP with batch norm: g1 at w, e = (rho/|g1| - alpha) g1,
    g2 at w + e with batch statistics but no running-statistics update, result (g1 + g2) / 2."""
    g = root.create_group("sagm")
    x = torch.randn(5, 1, 2, 2)
    y = torch.tensor([0, 2, 1, 1, 0])
    put(g, "x", x)
    put(g, "y", y)
    w = {"trunk.fc0.weight": torch.randn(4, 4), "trunk.fc0.bias": torch.randn(4), "trunk.bn0.weight": 1 + 0.1 * torch.randn(4),
         "trunk.bn0.bias": 0.1 * torch.randn(4), "head.fc.weight": torch.randn(3, 4), "head.fc.bias": torch.randn(3)}
    for k, v in w.items():
        put(g, "w/" + k, v)
    names = list(w)
    rho, alpha = 0.05, 0.001
    g.attrs["rho"], g.attrs["alpha"] = rho, alpha

    def loss_of(p):
        h = x.reshape(5, -1) @ p["trunk.fc0.weight"].T + p["trunk.fc0.bias"]
        mean, var = h.mean(0), h.var(0, unbiased=False)
        h = torch.relu((h - mean) / torch.sqrt(var + 1e-5) * p["trunk.bn0.weight"] + p["trunk.bn0.bias"])
        return F.cross_entropy(h @ p["head.fc.weight"].T + p["head.fc.bias"], y), mean, h.new_tensor(0)

    def grad(p):
        q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        loss, mean, _ = loss_of(q)
        return dict(zip(names, torch.autograd.grad(loss, [q[k] for k in names])))

    g1 = grad(w)
    norm = torch.sqrt(sum((v ** 2).sum() for v in g1.values()))
    coef = rho / norm - alpha
    g2 = grad({k: w[k] + coef * g1[k] for k in names})
    for k in names:
        put(g, "combined/" + k, (g1[k] + g2[k]) / 2)
    # Running statistics after the first pass only (momentum 0.1, unbiased variance).
    h = x.reshape(5, -1) @ w["trunk.fc0.weight"].T + w["trunk.fc0.bias"]
    put(g, "running_mean", 0.1 * h.mean(0))
    put(g, "running_var", 0.9 + 0.1 * h.var(0, unbiased=True))


def disorder(root):
    """Disorder of a sign sequence: the fraction of changes between consecutive entries."""
    g = root.create_group("disorder")
    seq = [1, 1, -1, 1, -1, -1, 1, 1, 1, -1, 0, 1]
    put(g, "signs", seq)
    for n in (4, 10, 12):
        window = seq[-n:]
        put(g, f"window{n}", sum(a != b for a, b in zip(window, window[1:])) / (n - 1))


def main(path):
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "tests/golden/make_golden.py"
        f.attrs["torch"] = str(torch.__version__)
        optimizers(f)
        schedules(f)
        label_smoothing(f)
        mixup(f)
        calibration(f)
        multi_sample_dropout(f)
        ghost_batch_norm(f)
        ssa(f)
        soups(f)
        fisher(f)
        pruning(f)
        fedspeed(f)
        lsq(f)
        sagm(f)
        disorder(f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/golden.h5")
