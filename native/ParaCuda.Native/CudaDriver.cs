using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>A CUDA call failed; the message names the error and the call (with sizes where they matter).</summary>
public class CudaException(string message, int status) : Exception(message)
{
    /// <summary>The CUresult (or the library's status code).</summary>
    public int Status { get; } = status;
}

/// <summary>
/// The CUDA driver API, as much of it as ParaCuda uses: devices and their attributes, the primary context,
/// memory (device and pinned host), streams and events, copies, modules and launches. Every call checks its
/// result and throws <see cref="CudaException"/> naming the error and the call. The caller makes a context
/// current on the calling thread (<see cref="SetCurrent"/>) before calls that need one.
/// </summary>
public static unsafe partial class CudaDriver
{
    public const int Success = 0;
    public const int InvalidValue = 1;
    public const int OutOfMemory = 2;
    public const int NotReady = 600;

    /// <summary>CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: an operation that is not allowed while a stream is captured.</summary>
    public const int StreamCaptureUnsupported = 900;

    private const uint StreamNonBlocking = 1;
    private const uint EventDisableTiming = 2;
    private const int FunctionMaxDynamicSharedBytes = 8;
    private const int CaptureModeRelaxed = 2;

    private static readonly Lazy<string?> s_unavailableReason = new(Probe);

    static CudaDriver() => NativeLibraries.EnsureResolver();

    /// <summary>True when libcuda loads, cuInit succeeds and a device exists.</summary>
    public static bool IsAvailable => s_unavailableReason.Value is null;

    /// <summary>Why <see cref="IsAvailable"/> is false, in words a user can act on; null when it is true.</summary>
    public static string? UnavailableReason => s_unavailableReason.Value;

    /// <summary>The CUDA version the driver supports, e.g. (13, 0).</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            Check(cuDriverGetVersion(out var version), "cuDriverGetVersion()");
            return (version / 1000, version % 1000 / 10);
        }
    }

    public static int DeviceCount
    {
        get
        {
            Check(cuDeviceGetCount(out var count), "cuDeviceGetCount()");
            return count;
        }
    }

    /// <summary>One integer attribute of device <paramref name="ordinal"/> (CUdevice_attribute).</summary>
    public static int Attribute(int ordinal, DeviceProperty attribute)
    {
        Check(cuDeviceGetAttribute(out var value, (int)attribute, Device(ordinal)), $"cuDeviceGetAttribute({attribute}, device {ordinal})");
        return value;
    }

    public static string Name(int ordinal)
    {
        var buffer = stackalloc byte[256];
        Check(cuDeviceGetName(buffer, 256, Device(ordinal)), $"cuDeviceGetName(device {ordinal})");
        return Marshal.PtrToStringUTF8((IntPtr)buffer) ?? $"device {ordinal}";
    }

    public static long TotalMemory(int ordinal)
    {
        Check(cuDeviceTotalMem_v2(out var bytes, Device(ordinal)), $"cuDeviceTotalMem(device {ordinal})");
        return (long)bytes;
    }

    /// <summary>Retains device <paramref name="ordinal"/>'s primary context (see <see cref="SetCurrent"/>).</summary>
    public static IntPtr RetainPrimaryContext(int ordinal)
    {
        Check(cuDevicePrimaryCtxRetain(out var context, Device(ordinal)), $"cuDevicePrimaryCtxRetain(device {ordinal})");
        return context;
    }

    public static void ReleasePrimaryContext(int ordinal) => Check(cuDevicePrimaryCtxRelease(Device(ordinal)), $"cuDevicePrimaryCtxRelease(device {ordinal})");

    public static void SetCurrent(IntPtr context) => Check(cuCtxSetCurrent(context), "cuCtxSetCurrent()");

    public static void Synchronize() => Check(cuCtxSynchronize(), "cuCtxSynchronize()");

    /// <summary>(free, total) bytes of the current context's device.</summary>
    public static (long Free, long Total) MemoryInfo()
    {
        Check(cuMemGetInfo_v2(out var free, out var total), "cuMemGetInfo()");
        return ((long)free, (long)total);
    }

    /// <summary>Device memory; out of memory is reported as status <see cref="OutOfMemory"/>, not thrown, so callers can free caches and retry.</summary>
    public static int TryAllocate(long bytes, out ulong pointer) => cuMemAlloc_v2(out pointer, (nuint)bytes);

    public static void Free(ulong pointer) => Check(cuMemFree_v2(pointer), "cuMemFree()");

    public static IntPtr AllocateHost(long bytes)
    {
        Check(cuMemAllocHost_v2(out var pointer, (nuint)bytes), $"cuMemAllocHost({bytes} bytes)");
        return pointer;
    }

    public static void FreeHost(IntPtr pointer) => Check(cuMemFreeHost(pointer), "cuMemFreeHost()");

    public static IntPtr CreateStream()
    {
        Check(cuStreamCreate(out var stream, StreamNonBlocking), "cuStreamCreate()");
        return stream;
    }

    public static void DestroyStream(IntPtr stream) => Check(cuStreamDestroy_v2(stream), "cuStreamDestroy()");

    public static void SynchronizeStream(IntPtr stream) => Check(cuStreamSynchronize(stream), "cuStreamSynchronize()");

    public static IntPtr CreateEvent(bool timing)
    {
        Check(cuEventCreate(out var e, timing ? 0u : EventDisableTiming), "cuEventCreate()");
        return e;
    }

    public static void DestroyEvent(IntPtr e) => Check(cuEventDestroy_v2(e), "cuEventDestroy()");

    public static void RecordEvent(IntPtr e, IntPtr stream) => Check(cuEventRecord(e, stream), "cuEventRecord()");

    public static void WaitEvent(IntPtr stream, IntPtr e) => Check(cuStreamWaitEvent(stream, e, 0), "cuStreamWaitEvent()");

    /// <summary>Whether the work before the event's last record has finished.</summary>
    public static bool EventCompleted(IntPtr e)
    {
        var status = cuEventQuery(e);
        if (status == NotReady)
        {
            return false;
        }

        Check(status, "cuEventQuery()");
        return true;
    }

    public static void SynchronizeEvent(IntPtr e) => Check(cuEventSynchronize(e), "cuEventSynchronize()");

    /// <summary>cuStreamBeginCapture in relaxed mode (allocation and module loads stay legal while capturing).</summary>
    public static void BeginCapture(IntPtr stream) => Check(cuStreamBeginCapture_v2(stream, CaptureModeRelaxed), "cuStreamBeginCapture()");

    /// <summary>cuStreamEndCapture, then cuGraphInstantiate: the executable graph and the graph it came from.</summary>
    public static (IntPtr Exec, IntPtr Graph) EndCapture(IntPtr stream)
    {
        Check(cuStreamEndCapture(stream, out var graph), "cuStreamEndCapture()");
        var status = cuGraphInstantiateWithFlags(out var exec, graph, 0);
        if (status != Success)
        {
            // The instantiation's error is the one to report; a failure to destroy the graph would hide it.
            _ = cuGraphDestroy(graph);
            Check(status, "cuGraphInstantiateWithFlags()");
        }

        return (exec, graph);
    }

    public static void LaunchGraph(IntPtr exec, IntPtr stream) => Check(cuGraphLaunch(exec, stream), "cuGraphLaunch()");

    public static void DestroyGraph(IntPtr exec, IntPtr graph)
    {
        Check(cuGraphExecDestroy(exec), "cuGraphExecDestroy()");
        Check(cuGraphDestroy(graph), "cuGraphDestroy()");
    }

    public static float ElapsedMilliseconds(IntPtr start, IntPtr end)
    {
        Check(cuEventElapsedTime(out var ms, start, end), "cuEventElapsedTime()");
        return ms;
    }

    public static void CopyHostToDevice(ulong destination, void* source, long bytes, IntPtr stream) =>
        Check(cuMemcpyHtoDAsync_v2(destination, source, (nuint)bytes, stream), $"cuMemcpyHtoDAsync({bytes} bytes)");

    public static void CopyDeviceToHost(void* destination, ulong source, long bytes, IntPtr stream) =>
        Check(cuMemcpyDtoHAsync_v2(destination, source, (nuint)bytes, stream), $"cuMemcpyDtoHAsync({bytes} bytes)");

    public static void CopyDeviceToDevice(ulong destination, ulong source, long bytes, IntPtr stream) =>
        Check(cuMemcpyDtoDAsync_v2(destination, source, (nuint)bytes, stream), $"cuMemcpyDtoDAsync({bytes} bytes)");

    /// <summary>A copy between the memory of two contexts; the driver stages it through the host when the GPUs cannot reach each other.</summary>
    public static void CopyPeer(ulong destination, IntPtr destinationContext, ulong source, IntPtr sourceContext, long bytes, IntPtr stream) =>
        Check(cuMemcpyPeerAsync(destination, destinationContext, source, sourceContext, (nuint)bytes, stream), $"cuMemcpyPeerAsync({bytes} bytes)");

    public static void Fill32(ulong destination, uint value, long count, IntPtr stream) =>
        Check(cuMemsetD32Async(destination, value, (nuint)count, stream), $"cuMemsetD32Async({count} words)");

    /// <summary>
    /// Loads a cubin or PTX image into the current context. A failure (a PTX the driver cannot JIT, say)
    /// throws with the JIT's error log.
    /// </summary>
    public static IntPtr LoadModule(ReadOnlySpan<byte> image, string name)
    {
        const int LogBytes = 8192;
        var infoLog = stackalloc byte[LogBytes];
        var errorLog = stackalloc byte[LogBytes];
        // CU_JIT_INFO_LOG_BUFFER, _SIZE_BYTES, CU_JIT_ERROR_LOG_BUFFER, _SIZE_BYTES
        var options = stackalloc int[] { 3, 4, 5, 6 };
        var values = stackalloc void*[] { infoLog, (void*)LogBytes, errorLog, (void*)LogBytes };
        fixed (byte* data = image)
        {
            var status = cuModuleLoadDataEx(out var module, data, 4, options, values);
            if (status != Success)
            {
                var log = Marshal.PtrToStringUTF8((IntPtr)errorLog)?.Trim();
                throw new CudaException($"{ErrorName(status)} in cuModuleLoadDataEx({name}){(string.IsNullOrEmpty(log) ? "" : $":\n{log}")}", status);
            }

            return module;
        }
    }

    public static void UnloadModule(IntPtr module) => Check(cuModuleUnload(module), "cuModuleUnload()");

    public static IntPtr Function(IntPtr module, string name)
    {
        Check(cuModuleGetFunction(out var function, module, name), $"cuModuleGetFunction({name})");
        return function;
    }

    public static void SetMaxDynamicSharedMemory(IntPtr function, string name, int bytes) =>
        Check(cuFuncSetAttribute(function, FunctionMaxDynamicSharedBytes, bytes), $"cuFuncSetAttribute({name}, max dynamic shared memory {bytes} bytes)");

    /// <summary>Launches <paramref name="function"/>; <paramref name="arguments"/> points at one pointer per kernel parameter.</summary>
    public static void Launch(IntPtr function, string name, (uint X, uint Y, uint Z) grid, (uint X, uint Y, uint Z) block, int sharedBytes, IntPtr stream, void** arguments) =>
        Check(
            cuLaunchKernel(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, (uint)sharedBytes, stream, arguments, null),
            $"cuLaunchKernel({name}, grid {grid}, block {block}, {sharedBytes} bytes of shared memory)");

    public static void Check(int status, string call)
    {
        if (status != Success)
        {
            throw new CudaException($"{ErrorName(status)} in {call}", status);
        }
    }

    public static string ErrorName(int status) =>
        cuGetErrorName(status, out var name) == Success && Marshal.PtrToStringAnsi(name) is { } text ? text : $"CUDA error {status}";

    private static int Device(int ordinal)
    {
        Check(cuDeviceGet(out var device, ordinal), $"cuDeviceGet({ordinal})");
        return device;
    }

    private static string? Probe()
    {
        if (NativeLibraries.TryLoad(NativeLibraries.Driver, out var tried) == IntPtr.Zero)
        {
            return $"no CUDA driver: none of {tried} could be loaded";
        }

        var status = cuInit(0);
        if (status != 0)
        {
            return $"the CUDA driver is present but cuInit failed with {ErrorName(status)}";
        }

        status = cuDeviceGetCount(out var count);
        if (status != 0 || count == 0)
        {
            return "the CUDA driver found no device";
        }

        return null;
    }

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuInit(uint flags);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDriverGetVersion(out int version);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceGetCount(out int count);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceGet(out int device, int ordinal);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceGetName(byte* name, int length, int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceTotalMem_v2(out nuint bytes, int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDevicePrimaryCtxRelease(int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuCtxSetCurrent(IntPtr context);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuCtxSynchronize();

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemGetInfo_v2(out nuint free, out nuint total);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemAlloc_v2(out ulong pointer, nuint bytes);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemFree_v2(ulong pointer);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemAllocHost_v2(out IntPtr pointer, nuint bytes);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemFreeHost(IntPtr pointer);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuStreamCreate(out IntPtr stream, uint flags);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuStreamDestroy_v2(IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuStreamSynchronize(IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuStreamWaitEvent(IntPtr stream, IntPtr e, uint flags);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuEventCreate(out IntPtr e, uint flags);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuEventDestroy_v2(IntPtr e);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuEventRecord(IntPtr e, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuEventQuery(IntPtr e);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuEventSynchronize(IntPtr e);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuStreamBeginCapture_v2(IntPtr stream, int mode);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuStreamEndCapture(IntPtr stream, out IntPtr graph);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuGraphInstantiateWithFlags(out IntPtr exec, IntPtr graph, ulong flags);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuGraphLaunch(IntPtr exec, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuGraphExecDestroy(IntPtr exec);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuGraphDestroy(IntPtr graph);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemcpyDtoDAsync_v2(ulong destination, ulong source, nuint bytes, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemcpyPeerAsync(ulong destination, IntPtr destinationContext, ulong source, IntPtr sourceContext, nuint bytes, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuModuleLoadDataEx(out IntPtr module, void* image, uint optionCount, int* options, void** optionValues);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuModuleUnload(IntPtr module);

    [LibraryImport(NativeLibraries.Driver, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ, uint sharedBytes, IntPtr stream, void** parameters, void** extra);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuGetErrorName(int status, out IntPtr name);
}

/// <summary>The CUdevice_attribute values ParaCuda reads.</summary>
public enum DeviceProperty
{
    MaxThreadsPerBlock = 1,
    MaxBlockDimX = 2,
    MaxBlockDimY = 3,
    MaxBlockDimZ = 4,
    MaxGridDimX = 5,
    MaxGridDimY = 6,
    MaxGridDimZ = 7,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    MultiprocessorCount = 16,
    L2CacheSize = 38,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerBlockOptin = 97,
}
