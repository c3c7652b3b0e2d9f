namespace ParaCuda.Tensors;

/// <summary>bf16 values on the host, as <see cref="DType.BFloat16"/> tensors store them: the upper 16 bits of a float32.</summary>
public static class BFloat16
{
    /// <summary>x rounded to bf16 to nearest even, as the GPU's cvt.rn.bf16.f32 does; NaN becomes 0x7FFF.</summary>
    public static ushort FromSingle(float x)
    {
        if (float.IsNaN(x))
        {
            return 0x7FFF;
        }

        var bits = BitConverter.SingleToUInt32Bits(x);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>The float32 a bf16 stands for (exact).</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>x rounded to the nearest bf16, as a float32.</summary>
    public static float Round(float x) => ToSingle(FromSingle(x));
}
