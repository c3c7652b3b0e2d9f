using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cpu;

/// <summary>Host memory from <see cref="HostMemoryPool"/>, 64-byte aligned so rows start on a cache line.</summary>
[SuppressMessage("Design", "CA1001", Justification = "Storage is reference counted: Release() frees the memory when the last tensor lets go.")]
internal sealed unsafe class CpuStorage(long bytes) : Storage(Device.Cpu, bytes)
{
    // The handle frees the memory on Release(), and from its finalizer if a storage is ever leaked.
    private readonly AlignedMemory _memory = new(bytes);

    public void* Pointer => _memory.IsClosed ? throw new ObjectDisposedException(nameof(CpuStorage)) : (void*)_memory.DangerousGetHandle();

    protected override void Free() => _memory.Dispose();

    private sealed class AlignedMemory : SafeHandle
    {
        private readonly long _bytes;

        public AlignedMemory(long bytes)
            : base(IntPtr.Zero, ownsHandle: true)
        {
            _bytes = bytes;
            SetHandle(HostMemoryPool.Rent(bytes));
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            HostMemoryPool.Return(handle, _bytes);
            return true;
        }
    }
}
