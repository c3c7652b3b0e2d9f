using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// The calls ParaCuda refuses on a stream being captured into a graph: the host waiting for it, host copies and
/// cross-stream events. CUDA refuses some of them itself and silently records others (a copy into pinned memory
/// becomes a graph node, and the host would read memory the capture never wrote); both devices refuse all of them
/// alike, before the driver sees the call.
/// </summary>
internal static class CaptureRefusal
{
    public static CudaException For(string call) =>
        new($"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED in {call}: the stream is being captured into a graph (ParaCuda's graphs hold device work on one stream only)", CudaDriver.StreamCaptureUnsupported);
}
