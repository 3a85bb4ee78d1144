using System.Runtime.InteropServices;
using Pmem2.Oracle;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>One way of executing the mem operations: the model (a byte array), native libpmem2, or ours.</summary>
internal interface IMemSide
{
    string Name { get; }

    /// <summary>Plain (non-pmem) stores, like the tests' libc memset.</summary>
    void Fill(ulong off, ulong len, byte value);

    /// <summary>Plain stores of <paramref name="data"/>.</summary>
    void Write(ulong off, byte[] data);

    void Persist(ulong off, ulong len);

    void Drain();

    /// <summary>pmem2_memcpy_fn with source and destination inside the mapping.</summary>
    void Memcpy(ulong dst, ulong src, ulong len, Pmem2MemFlags flags);

    /// <summary>pmem2_memcpy_fn from a buffer outside the mapping.</summary>
    void CopyIn(ulong dst, byte[] data, Pmem2MemFlags flags);

    void Memmove(ulong dst, ulong src, ulong len, Pmem2MemFlags flags);

    void Memset(ulong dst, byte value, ulong len, Pmem2MemFlags flags);

    /// <summary>
    /// A deferred non-temporal copy made persistent afterwards: ours' CopyNonTemporalDeferred +
    /// CompleteDeferred; native's memcpy(NONTEMPORAL|NODRAIN) then drain (msync on PAGE).
    /// </summary>
    void CopyInDeferred(ulong dst, byte[] data);

    void Read(ulong off, byte[] destination, int length);
}

/// <summary>The expected result: the same operations with plain array copies.</summary>
internal sealed class ModelSide(byte[] bytes) : IMemSide
{
    public string Name => "model";

    public byte[] Bytes { get; } = bytes;

    public void Fill(ulong off, ulong len, byte value) => Bytes.AsSpan((int)off, (int)len).Fill(value);

    public void Write(ulong off, byte[] data) => data.CopyTo(Bytes, (int)off);

    public void Persist(ulong off, ulong len)
    {
    }

    public void Drain()
    {
    }

    public void Memcpy(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) => Array.Copy(Bytes, (long)src, Bytes, (long)dst, (long)len);

    public void CopyIn(ulong dst, byte[] data, Pmem2MemFlags flags) => data.CopyTo(Bytes, (int)dst);

    public void Memmove(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) => Array.Copy(Bytes, (long)src, Bytes, (long)dst, (long)len);

    public void Memset(ulong dst, byte value, ulong len, Pmem2MemFlags flags) => Fill(dst, len, value);

    public void CopyInDeferred(ulong dst, byte[] data) => data.CopyTo(Bytes, (int)dst);

    public void Read(ulong off, byte[] destination, int length) => Array.Copy(Bytes, (long)off, destination, 0, length);
}

/// <summary>Native libpmem2 through its function pointers; also checks each returns its destination.</summary>
internal sealed class NativeSideMem(NativeMap map, List<string> errors) : IMemSide
{
    private readonly Dictionary<byte, byte[]> _fills = [];

    public string Name => "native";

    public NativeMap Map { get; } = map;

    public void Fill(ulong off, ulong len, byte value)
    {
        if (!_fills.TryGetValue(value, out var buffer) || (ulong)buffer.Length < len)
        {
            buffer = new byte[Math.Max(len, 16384)];
            buffer.AsSpan().Fill(value);
            _fills[value] = buffer;
        }

        Marshal.Copy(buffer, 0, Map.Address + (nint)off, (int)len);
    }

    public void Write(ulong off, byte[] data) => Marshal.Copy(data, 0, Map.Address + (nint)off, data.Length);

    public void Persist(ulong off, ulong len) => Map.Persist(Map.Address + (nint)off, (nuint)len);

    public void Drain() => Map.Drain();

    public void Memcpy(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) =>
        CheckReturn("memcpy", Map.Memcpy(Map.Address + (nint)dst, Map.Address + (nint)src, (nuint)len, (uint)flags), dst);

    public void CopyIn(ulong dst, byte[] data, Pmem2MemFlags flags)
    {
        var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        try
        {
            CheckReturn("memcpy", Map.Memcpy(Map.Address + (nint)dst, pin.AddrOfPinnedObject(), (nuint)data.Length, (uint)flags), dst);
        }
        finally
        {
            pin.Free();
        }
    }

    public void Memmove(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) =>
        CheckReturn("memmove", Map.Memmove(Map.Address + (nint)dst, Map.Address + (nint)src, (nuint)len, (uint)flags), dst);

    public void Memset(ulong dst, byte value, ulong len, Pmem2MemFlags flags) =>
        CheckReturn("memset", Map.Memset(Map.Address + (nint)dst, value, (nuint)len, (uint)flags), dst);

    public void CopyInDeferred(ulong dst, byte[] data)
    {
        CopyIn(dst, data, Pmem2MemFlags.NonTemporal | Pmem2MemFlags.NoDrain);
        if (Map.Granularity == Raw.Page)
        {
            Persist(dst, (ulong)data.Length);
        }
        else
        {
            Drain();
        }
    }

    public void Read(ulong off, byte[] destination, int length) => Marshal.Copy(Map.Address + (nint)off, destination, 0, length);

    private void CheckReturn(string what, nint returned, ulong dst)
    {
        if (returned != Map.Address + (nint)dst)
        {
            errors.Add($"native {what} returned 0x{returned:x}, expected the destination 0x{Map.Address + (nint)dst:x}");
        }
    }
}

/// <summary>Ours, through the public <see cref="Pmem2Map"/> API.</summary>
internal sealed class OursSideMem(Pmem2Map map) : IMemSide
{
    public string Name => "ours";

    public Pmem2Map Map { get; } = map;

    public void Fill(ulong off, ulong len, byte value) => Map.GetSpan().Slice((int)off, (int)len).Fill(value);

    public void Write(ulong off, byte[] data) => data.CopyTo(Map.GetSpan().Slice((int)off));

    public void Persist(ulong off, ulong len) => Map.Persist(off, len);

    public void Drain() => Map.Drain();

    public void Memcpy(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) => Map.Memcpy(dst, Map.GetSpan().Slice((int)src, (int)len), flags);

    public void CopyIn(ulong dst, byte[] data, Pmem2MemFlags flags) => Map.Memcpy(dst, data, flags);

    public void Memmove(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) => Map.Memmove(dst, src, len, flags);

    public void Memset(ulong dst, byte value, ulong len, Pmem2MemFlags flags) => Map.Memset(dst, value, len, flags);

    public void CopyInDeferred(ulong dst, byte[] data)
    {
        Map.CopyNonTemporalDeferred(dst, data);
        Map.CompleteDeferred(dst, (ulong)data.Length);
    }

    public void Read(ulong off, byte[] destination, int length) => Map.Read(off, destination.AsSpan(0, length));
}

/// <summary>
/// Ours through the internal pointer-free Raw entry points the benchmarks use (no bounds checks, no
/// handle reference); checks that each copy returns its destination like libpmem2's functions.
/// </summary>
internal sealed class OursRawSideMem(Pmem2Map map, List<string> errors) : IMemSide
{
    public string Name => "ours-raw";

    public Pmem2Map Map { get; } = map;

    public void Fill(ulong off, ulong len, byte value) => Map.GetSpan().Slice((int)off, (int)len).Fill(value);

    public void Write(ulong off, byte[] data) => data.CopyTo(Map.GetSpan().Slice((int)off));

    public void Persist(ulong off, ulong len) => Map.PersistRaw(Map.Address + (nint)off, (nuint)len);

    public void Drain() => Map.Drain();

    public void Memcpy(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) =>
        CheckReturn("MemcpyRaw", Map.MemcpyRaw(Map.Address + (nint)dst, Map.Address + (nint)src, (nuint)len, flags), dst);

    public void CopyIn(ulong dst, byte[] data, Pmem2MemFlags flags)
    {
        var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        try
        {
            CheckReturn("MemcpyRaw", Map.MemcpyRaw(Map.Address + (nint)dst, pin.AddrOfPinnedObject(), (nuint)data.Length, flags), dst);
        }
        finally
        {
            pin.Free();
        }
    }

    public void Memmove(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) =>
        CheckReturn("MemmoveRaw", Map.MemmoveRaw(Map.Address + (nint)dst, Map.Address + (nint)src, (nuint)len, flags), dst);

    public void Memset(ulong dst, byte value, ulong len, Pmem2MemFlags flags) =>
        CheckReturn("MemsetRaw", Map.MemsetRaw(Map.Address + (nint)dst, value, (nuint)len, flags), dst);

    public void CopyInDeferred(ulong dst, byte[] data)
    {
        var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        try
        {
            Map.CopyNonTemporalDeferredRaw(Map.Address + (nint)dst, pin.AddrOfPinnedObject(), (nuint)data.Length);
            Map.CompleteDeferredRaw(Map.Address + (nint)dst, (nuint)data.Length);
        }
        finally
        {
            pin.Free();
        }
    }

    public void Read(ulong off, byte[] destination, int length) => Map.Read(off, destination.AsSpan(0, length));

    private void CheckReturn(string what, nint returned, ulong dst)
    {
        if (returned != Map.Address + (nint)dst)
        {
            errors.Add($"ours {what} returned 0x{returned:x}, expected the destination 0x{Map.Address + (nint)dst:x}");
        }
    }
}
