namespace ParaCuda.Tensors;

/// <summary>Element type of a tensor. Backends declare which ones each op accepts.</summary>
public enum DType
{
    Float32,
    BFloat16,
    Float16,
    /// <summary>Class labels, argmax results and counters.</summary>
    Int32,

    /// <summary>Stored image pixels, as they travel to a GPU before the transform runs there.</summary>
    UInt8,
}

public static class DTypeExtensions
{
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.BFloat16 or DType.Float16 => 2,
        DType.UInt8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>The name safetensors and PyTorch use (F32, BF16, F16, I32).</summary>
    public static string SafetensorsName(this DType dtype) => dtype switch
    {
        DType.Float32 => "F32",
        DType.BFloat16 => "BF16",
        DType.Float16 => "F16",
        DType.Int32 => "I32",
        DType.UInt8 => "U8",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    public static bool IsFloatingPoint(this DType dtype) => dtype is DType.Float32 or DType.BFloat16 or DType.Float16;
}
