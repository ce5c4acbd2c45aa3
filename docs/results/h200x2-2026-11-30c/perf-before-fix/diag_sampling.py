"""Which formulation of inverse-CDF sampling compiles with inductor at vocab 49152 (and how fast), plus a profile
of the static loop's step at batch 64 on the random SmolLM2 shape."""
import sys, time, traceback
import torch
from grpo.eval.static_decode import Sampling, next_tokens

torch.manual_seed(0)
dev = "cuda"
B, V = 64, 49152
logits = torch.randn(B, V, device=dev, dtype=torch.bfloat16) * 3
uniforms = torch.rand(B, device=dev)

def searchsorted_variant(logits, uniforms):
    probs = torch.softmax(logits.float(), dim=-1)
    cumulative = probs.cumsum(dim=-1)
    total = cumulative[:, -1:]
    threshold = torch.minimum(uniforms[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cumulative, threshold, right=True).squeeze(-1)

def race_variant(logits, noise):
    return (torch.softmax(logits.float(), -1) / noise).argmax(-1)

noise = torch.empty(B, V, device=dev).exponential_()
cases = {
    "current-plain": (lambda l, u: next_tokens(l, u, Sampling(True, 1.0, 1.0, 0)), (logits, uniforms)),
    "current-topp": (lambda l, u: next_tokens(l, u, Sampling(True, 0.7, 0.9, 0)), (logits, uniforms)),
    "current-topk": (lambda l, u: next_tokens(l, u, Sampling(True, 0.7, 1.0, 50)), (logits, uniforms)),
    "searchsorted": (searchsorted_variant, (logits, uniforms)),
    "race": (race_variant, (logits, noise)),
}
for name, (fn, args) in cases.items():
    for mode in ("default", "reduce-overhead"):
        torch._dynamo.reset()
        try:
            c = torch.compile(fn, mode=mode, fullgraph=True)
            ref = fn(*args)
            out = c(*args); out = c(*args); torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(100): c(*args)
            torch.cuda.synchronize()
            agree = (out == ref).float().mean().item()
            print(f"{name:14s} {mode:16s} OK  {1e3*(time.perf_counter()-t)/100:.3f} ms  agree {agree:.3f}", flush=True)
        except Exception as e:
            msg = str(e).strip().splitlines()
            print(f"{name:14s} {mode:16s} FAIL {type(e).__name__}: {msg[-1][:200] if msg else ''}", flush=True)
            if name == "current-plain" and mode == "default":
                traceback.print_exc(limit=3, file=sys.stdout)

# profile of the compiled greedy loop at batch 64, 256 new tokens (random SmolLM2 weights)
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
from grpo.bench.train_step import materialize_shape
from grpo.eval.static_decode import StaticDecoder
folder = materialize_shape("smollm2-135m", Path("/tmp/grpo-bench-models"), sys.argv[1])
torch._dynamo.reset()
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(dev).eval()
tok = AutoTokenizer.from_pretrained(folder)
ids = torch.randint(100, 40000, (64, 100), device=dev)
mask = torch.ones_like(ids)
dec = StaticDecoder(model, 100 + 256, 256, [], tok.pad_token_id)
dec(ids, mask); torch.cuda.synchronize()
t = time.perf_counter(); dec(ids, mask); torch.cuda.synchronize()
print(f"loop batch 64: {1e3*(time.perf_counter()-t)/256:.3f} ms/token", flush=True)
from torch.profiler import profile, ProfilerActivity
dec.prefill(ids, mask)
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(32):
        dec.step()
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
