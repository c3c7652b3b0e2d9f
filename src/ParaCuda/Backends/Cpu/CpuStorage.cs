using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cpu;

/// <summary>Host memory, 64-byte aligned so that rows can start on a cache line and vector loads stay aligned.</summary>
[SuppressMessage("Design", "CA1001", Justification = "Storage is reference counted: Release() frees the memory when the last tensor lets go.")]
internal sealed unsafe class CpuStorage(long bytes) : Storage(Device.Cpu, bytes)
{
    // The handle frees the memory on Release(), and from its finalizer if a storage is ever leaked.
    private readonly AlignedMemory _memory = new(bytes);

    public void* Pointer => _memory.IsClosed ? throw new ObjectDisposedException(nameof(CpuStorage)) : (void*)_memory.DangerousGetHandle();

    protected override void Free() => _memory.Dispose();

    private sealed class AlignedMemory : SafeHandle
    {
        public AlignedMemory(long bytes)
            : base(IntPtr.Zero, ownsHandle: true)
        {
            SetHandle((IntPtr)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64));
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            NativeMemory.AlignedFree((void*)handle);
            return true;
        }
    }
}
