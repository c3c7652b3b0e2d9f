using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using ParaCuda.Backends;
using ParaCuda.Backends.Cuda;
using ParaCuda.Inference;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Native;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.NativeLibrary;

/// <summary>
/// The functions of paracuda.h. Each one returns a <see cref="Status"/> and never lets an exception out (one
/// escaping an exported function would end the host process): the message goes to this thread's last error.
/// </summary>
internal static unsafe class Exports
{
    private static readonly byte* s_version = Utf8(Engine.Version);
    private static readonly byte* s_noError = Utf8("");

    [ThreadStatic]
    private static nint t_lastError;

    [UnmanagedCallersOnly(EntryPoint = "paracuda_version", CallConvs = [typeof(CallConvCdecl)])]
    public static byte* Version() => s_version;

    [UnmanagedCallersOnly(EntryPoint = "paracuda_last_error", CallConvs = [typeof(CallConvCdecl)])]
    public static byte* LastError() => t_lastError == 0 ? s_noError : (byte*)t_lastError;

    [UnmanagedCallersOnly(EntryPoint = "paracuda_set_threads", CallConvs = [typeof(CallConvCdecl)])]
    public static Status SetThreads(int threads) => Guard(() =>
    {
        Engine.Threads = threads >= 1 ? threads : throw new ArgumentOutOfRangeException(nameof(threads), $"threads must be at least 1, got {threads}");
    });

    [UnmanagedCallersOnly(EntryPoint = "paracuda_load", CallConvs = [typeof(CallConvCdecl)])]
    public static Status Load(byte* path, byte* device, nint* model) => Guard(() =>
    {
        Required(model, "model");
        *model = 0;
        var file = Marshal.PtrToStringUTF8((nint)path) ?? throw new ArgumentException("path is NULL");
        var placement = Placed(Marshal.PtrToStringUTF8((nint)device) ?? "auto");
        try
        {
            var config = Checkpoint.ReadConfig(file);
            var loaded = Checkpoint.LoadModel(file, placement.Main, placement.BranchContexts(config.Kind == ModelKind.ParaFormer ? config.Branches : 1));
            *model = GCHandle.ToIntPtr(GCHandle.Alloc(new LoadedModel(loaded, placement)));
        }
        catch
        {
            placement.Dispose();
            throw;
        }
    });

    [UnmanagedCallersOnly(EntryPoint = "paracuda_get_info", CallConvs = [typeof(CallConvCdecl)])]
    public static Status Info(nint model, ModelInfo* info) => Guard(() =>
    {
        Required(info, "info");
        var config = Model(model).Model.Config;
        *info = new ModelInfo(config.Classes, Model(model).Model.Prefixes, config.Channels, config.ImageSize, Model(model).Model.ParameterCount());
    });

    [UnmanagedCallersOnly(EntryPoint = "paracuda_predict_u8", CallConvs = [typeof(CallConvCdecl)])]
    public static Status PredictBytes(nint model, byte* pixels, int count, int height, int width, int prefix, int batchSize, float* logits, int* labels) => Guard(() =>
    {
        var loaded = Model(model);
        Required(pixels, "pixels");
        var bytes = (long)count * loaded.Model.Config.Channels * height * width;
        if (count < 0 || height <= 0 || width <= 0)
        {
            throw new ArgumentException($"{count} images of {height}×{width} pixels: sizes must be positive");
        }

        var copy = new ReadOnlySpan<byte>(pixels, checked((int)bytes)).ToArray();
        lock (loaded)
        {
            Write(loaded.Model.Predict(copy, count, height, width, prefix, Batch(batchSize)), 0, logits, labels);
        }
    });

    [UnmanagedCallersOnly(EntryPoint = "paracuda_predict_f32", CallConvs = [typeof(CallConvCdecl)])]
    public static Status PredictFloats(nint model, float* images, int count, int prefix, int batchSize, float* logits, int* labels) => Guard(() =>
    {
        var loaded = Model(model);
        Required(images, "images");
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var config = loaded.Model.Config;
        var imageLength = config.Channels * config.ImageSize * config.ImageSize;
        var batch = Batch(batchSize);
        lock (loaded)
        {
            // One batch of input at a time becomes a tensor, so the caller's array is never copied whole.
            for (var start = 0; start < count; start += batch)
            {
                var n = Math.Min(batch, count - start);
                using var scope = TensorScope.Begin();
                var chunk = Tensor.FromArray(new ReadOnlySpan<float>(images + ((long)start * imageLength), n * imageLength), new Shape(n, config.Channels, config.ImageSize, config.ImageSize), loaded.Model.Context);
                Write(loaded.Model.Predict(chunk, prefix, batch), start, logits, labels);
            }
        }
    });

    [UnmanagedCallersOnly(EntryPoint = "paracuda_free", CallConvs = [typeof(CallConvCdecl)])]
    public static void Free(nint model)
    {
        if (model == 0)
        {
            return;
        }

        var handle = GCHandle.FromIntPtr(model);
        if (handle.Target is LoadedModel loaded)
        {
            loaded.Dispose();
        }

        handle.Free();
    }

    /// <summary>Runs <paramref name="body"/>; an exception becomes its status code and this thread's last error.</summary>
    private static Status Guard(Action body)
    {
        try
        {
            body();
            return Status.Ok;
        }
        catch (Exception error)
        {
            var status = error switch
            {
                ArgumentException or FormatException => Status.InvalidArgument,
                FileNotFoundException or DirectoryNotFoundException => Status.NotFound,
                CheckpointFormatException or InvalidDataException or JsonException => Status.BadFormat,
                OutOfMemoryException or InsufficientMemoryException or DeviceOutOfMemoryException => Status.OutOfMemory,
                CudaException or TensorOpException => Status.DeviceError,
                IOException or UnauthorizedAccessException => Status.IoError,
                _ => Status.Internal,
            };
            // .NET appends "(Parameter 'x')" to argument errors: a C caller never saw that name.
            var message = error is ArgumentException { ParamName: { } name } ? error.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : error.Message;
            SetLastError(status == Status.Internal ? $"{error.GetType().Name}: {message}" : message);
            return status;
        }
    }

    private static void SetLastError(string message)
    {
        var previous = t_lastError;
        t_lastError = (nint)Utf8(message);
        NativeMemory.Free((void*)previous);
    }

    private static byte* Utf8(string text)
    {
        var length = System.Text.Encoding.UTF8.GetByteCount(text);
        var buffer = (byte*)NativeMemory.Alloc((nuint)length + 1);
        System.Text.Encoding.UTF8.GetBytes(text, new Span<byte>(buffer, length));
        buffer[length] = 0;
        return buffer;
    }

    private static void Required(void* pointer, string name)
    {
        if (pointer is null)
        {
            throw new ArgumentException($"{name} is NULL");
        }
    }

    private static int Batch(int batchSize) => batchSize == 0 ? Prediction.DefaultBatchSize
        : batchSize > 0 ? batchSize : throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch_size must be positive (or 0 for {Prediction.DefaultBatchSize}), got {batchSize}");

    private static LoadedModel Model(nint model) =>
        model != 0 && GCHandle.FromIntPtr(model).Target is LoadedModel loaded ? loaded : throw new ArgumentException("model is NULL or not a loaded model");

    /// <summary>Copies <paramref name="predictions"/> to rows <paramref name="start"/>.. of the caller's arrays (either may be NULL, not both).</summary>
    private static void Write(Predictions predictions, int start, float* logits, int* labels)
    {
        if (logits is null && labels is null)
        {
            throw new ArgumentException("logits and labels are both NULL: nothing to write the predictions to");
        }

        if (logits is not null)
        {
            predictions.Logits.CopyTo(new Span<float>(logits + ((long)start * predictions.Classes), predictions.Logits.Length));
        }

        if (labels is not null)
        {
            predictions.Labels().CopyTo(new Span<int>(labels + start, predictions.Count));
        }
    }

    /// <summary>"auto" (a GPU when the driver finds one, else the CPU), "cpu", "cuda", "cuda:N" or "emu", optionally followed by "+fp32" or "+tf32".</summary>
    private static Placement Placed(string device)
    {
        device = device.Trim().ToLowerInvariant();
        GemmPrecision? precision = null;
        if (device.Split('+') is [var name, var suffix])
        {
            device = name;
            precision = Enum.TryParse<GemmPrecision>(suffix, ignoreCase: true, out var chosen) && suffix is "fp32" or "tf32"
                ? chosen
                : throw new ArgumentException($"precision '{suffix}' is not fp32 or tf32");
        }

        if (device == "auto")
        {
            device = CudaDriver.IsAvailable ? "cuda" : "cpu";
        }

        if (device == "cpu")
        {
            return precision is null ? Placement.Cpu : throw new ArgumentException("the CPU computes in float32 only; +fp32 and +tf32 apply to CUDA devices");
        }

        var emulated = device == "emu";
        var parsed = emulated ? Device.Cuda(0) : Device.Parse(device);
        if (parsed.Kind != DeviceKind.Cuda)
        {
            throw new ArgumentException($"device '{device}' is not one of auto, cpu, cuda, cuda:N, emu");
        }

        if (!emulated && CudaDriver.UnavailableReason is { } reason)
        {
            throw new CudaException($"device '{device}': {reason}", 0);
        }

        return Placement.Cuda([parsed.Index], emulated, BranchExecution.Streams, precision);
    }

    /// <summary>paracuda_status in paracuda.h.</summary>
    internal enum Status
    {
        Ok = 0,
        InvalidArgument = 1,
        NotFound = 2,
        BadFormat = 3,
        OutOfMemory = 4,
        DeviceError = 5,
        IoError = 6,
        Internal = 7,
    }

    /// <summary>paracuda_model_info in paracuda.h.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal readonly record struct ModelInfo(int Classes, int Branches, int Channels, int ImageSize, long Parameters);

    /// <summary>A model and the placement it runs on, which it outlives by nothing.</summary>
    private sealed class LoadedModel(VisionModel model, Placement placement) : IDisposable
    {
        public VisionModel Model { get; } = model;

        public void Dispose()
        {
            Model.Dispose();
            placement.Dispose();
        }
    }
}
