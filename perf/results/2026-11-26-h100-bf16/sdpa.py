# SDPA at the attention shape (B 500, H 3, T 197, Dh 64), bf16 and TF32-era float32, CUDA events, medians.
import torch, torch.nn.functional as F
torch.backends.cuda.matmul.allow_tf32 = True
def med(fn, n=50):
    for _ in range(10): fn()
    ts = []
    for _ in range(n):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    ts.sort(); return ts[len(ts) // 2]
for dtype in (torch.bfloat16, torch.float32):
    q, k, v = (torch.randn(500, 3, 197, 64, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    g = torch.randn(500, 3, 197, 64, device="cuda", dtype=dtype)
    fwd = med(lambda: F.scaled_dot_product_attention(q, k, v))
    def both():
        o = F.scaled_dot_product_attention(q, k, v); o.backward(g)
    print(f"SDPA {dtype}: forward {fwd:.3f} ms, forward+backward {med(both):.3f} ms")
