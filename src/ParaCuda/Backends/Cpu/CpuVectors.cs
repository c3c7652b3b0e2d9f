using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaCuda.Backends.Cpu;

/// <summary>
/// The vector operations a CPU kernel needs, as static members so a kernel written once over
/// <typeparamref name="TV"/> is specialised by the JIT for AVX-512, AVX2 or scalar code.
/// </summary>
/// <typeparam name="TV">The register type.</typeparam>
internal unsafe interface IVectorOps<TV>
    where TV : struct
{
    static abstract int Width { get; }

    /// <summary>Rows of the GEMM micro-kernel tile: as many as the register file holds accumulators for.</summary>
    static abstract int Rows { get; }

    static abstract TV Zero { get; }

    static abstract TV Splat(float value);

    static abstract TV Broadcast(float* p);

    static abstract TV Load(float* p);

    static abstract void Store(float* p, TV value);

    /// <summary>a·b + c.</summary>
    static abstract TV MultiplyAdd(TV a, TV b, TV c);

    /// <summary>A mask selecting the first <paramref name="count"/> lanes (none if count ≤ 0).</summary>
    static abstract TV PrefixMask(int count);

    /// <summary>Loads the lanes selected by mask and zeroes the rest, never touching unselected memory.</summary>
    static abstract TV LoadMasked(float* p, TV mask);

    static abstract void StoreMasked(float* p, TV mask, TV value);
}

internal readonly unsafe struct V512 : IVectorOps<Vector512<float>>
{
    public static int Width => Vector512<float>.Count;

    // 12×2 accumulators + 2 B vectors + 1 broadcast fit the 32 zmm registers.
    public static int Rows => 12;

    public static Vector512<float> Zero => Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Splat(float value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Broadcast(float* p) => Vector512.Create(*p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* p) => Vector512.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector512<float> value) => value.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Avx512F.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> PrefixMask(int count) =>
        Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadMasked(float* p, Vector512<float> mask) =>
        Avx512F.MaskLoad(p, mask, Vector512<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreMasked(float* p, Vector512<float> mask, Vector512<float> value) =>
        Avx512F.MaskStore(p, mask, value);
}

internal readonly unsafe struct V256 : IVectorOps<Vector256<float>>
{
    public static int Width => Vector256<float>.Count;

    // 16 ymm registers: 6×2 accumulators + 2 B vectors + 1 broadcast.
    public static int Rows => 6;

    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Splat(float value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float* p) => Vector256.Create(*p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector256<float> value) => value.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.MultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> PrefixMask(int count) =>
        Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(count)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadMasked(float* p, Vector256<float> mask) => Avx.MaskLoad(p, mask);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreMasked(float* p, Vector256<float> mask, Vector256<float> value) =>
        Avx.MaskStore(p, mask, value);
}

internal readonly unsafe struct ScalarLanes : IVectorOps<float>
{
    public static int Width => 1;

    public static int Rows => 4;

    public static float Zero => 0f;

    public static float Splat(float value) => value;

    public static float Broadcast(float* p) => *p;

    public static float Load(float* p) => *p;

    public static void Store(float* p, float value) => *p = value;

    public static float MultiplyAdd(float a, float b, float c) => (a * b) + c;

    // Any nonzero bit pattern means "selected"; 1 keeps the comparison below simple.
    public static float PrefixMask(int count) => count > 0 ? 1f : 0f;

    public static float LoadMasked(float* p, float mask) => mask != 0f ? *p : 0f;

    public static void StoreMasked(float* p, float mask, float value)
    {
        if (mask != 0f)
        {
            *p = value;
        }
    }
}
