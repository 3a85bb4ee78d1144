using System.Runtime.InteropServices;

namespace Pmem2.Oracle;

/// <summary>
/// Binding of Debian's native libpmem2 (libpmem2.so.1, PMDK 1.12.1), used only by tests and
/// benchmarks as the oracle for our C# implementation.
/// <para>
/// [DllImport] with blittable signatures (nint / nuint / int) on purpose: [LibraryImport] needs
/// AllowUnsafeBlocks, which the repository reserves for src/Pmem2. Function pointers returned by
/// pmem2_get_*_fn are called through delegates created once per map.
/// </para>
/// <para>
/// Environment: .NET keeps its own copy of the environment on Unix, so
/// Environment.SetEnvironmentVariable is invisible to native getenv. Use <see cref="SetNativeEnvironment"/>
/// for variables libpmem2 reads (PMEM2_FORCE_GRANULARITY is read on every pmem2_map_new; the PMEM_*
/// tuning variables only once, when the library is loaded).
/// </para>
/// </summary>
internal static class NativePmem2
{
    private const string Lib = "libpmem2.so.1";
    private const string LibC = "libc";

    private static readonly Lazy<bool> s_available = new(() => NativeLibrary.TryLoad(Lib, out _));

    /// <summary>Whether libpmem2.so.1 can be loaded (apt-get install libpmem2).</summary>
    public static bool IsAvailable => s_available.Value;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate nint MemmoveFn(nint dst, nint src, nuint len, uint flags);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate nint MemsetFn(nint dst, int c, nuint len, uint flags);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate void PersistFn(nint ptr, nuint len);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate void DrainFn();

    // --- config -------------------------------------------------------------------------
    [DllImport(Lib)] public static extern int pmem2_config_new(out nint cfg);
    [DllImport(Lib)] public static extern int pmem2_config_delete(ref nint cfg);
    [DllImport(Lib)] public static extern int pmem2_config_set_required_store_granularity(nint cfg, int granularity);
    [DllImport(Lib)] public static extern int pmem2_config_set_offset(nint cfg, nuint offset);
    [DllImport(Lib)] public static extern int pmem2_config_set_length(nint cfg, nuint length);
    [DllImport(Lib)] public static extern int pmem2_config_set_sharing(nint cfg, int sharing);
    [DllImport(Lib)] public static extern int pmem2_config_set_protection(nint cfg, uint prot);

    // --- source -------------------------------------------------------------------------
    [DllImport(Lib)] public static extern int pmem2_source_from_fd(out nint src, int fd);
    [DllImport(Lib)] public static extern int pmem2_source_from_anon(out nint src, nuint size);
    [DllImport(Lib)] public static extern int pmem2_source_delete(ref nint src);
    [DllImport(Lib)] public static extern int pmem2_source_size(nint src, out nuint size);
    [DllImport(Lib)] public static extern int pmem2_source_alignment(nint src, out nuint alignment);
    [DllImport(Lib)] public static extern int pmem2_source_get_fd(nint src, out int fd);

    // --- map ----------------------------------------------------------------------------
    [DllImport(Lib)] public static extern int pmem2_map_new(out nint map, nint cfg, nint src);
    [DllImport(Lib)] public static extern int pmem2_map_delete(ref nint map);
    [DllImport(Lib)] public static extern nint pmem2_map_get_address(nint map);
    [DllImport(Lib)] public static extern nuint pmem2_map_get_size(nint map);
    [DllImport(Lib)] public static extern int pmem2_map_get_store_granularity(nint map);
    [DllImport(Lib)] public static extern int pmem2_deep_flush(nint map, nint ptr, nuint size);

    // --- function getters ---------------------------------------------------------------
    [DllImport(Lib)] public static extern nint pmem2_get_memcpy_fn(nint map);
    [DllImport(Lib)] public static extern nint pmem2_get_memmove_fn(nint map);
    [DllImport(Lib)] public static extern nint pmem2_get_memset_fn(nint map);
    [DllImport(Lib)] public static extern nint pmem2_get_persist_fn(nint map);
    [DllImport(Lib)] public static extern nint pmem2_get_flush_fn(nint map);
    [DllImport(Lib)] public static extern nint pmem2_get_drain_fn(nint map);

    // --- errors -------------------------------------------------------------------------
    [DllImport(Lib)] private static extern nint pmem2_errormsg();

    /// <summary>pmem2_errormsg(): thread-local, and stale after a success (not cleared).</summary>
    public static string ErrorMessage() => Marshal.PtrToStringUTF8(pmem2_errormsg()) ?? string.Empty;

    // --- libc environment ---------------------------------------------------------------
    [DllImport(LibC, EntryPoint = "setenv")] private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);
    [DllImport(LibC, EntryPoint = "unsetenv")] private static extern int unsetenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    /// <summary>Sets (or, with null, removes) a variable in both the native and the managed environment.</summary>
    public static void SetNativeEnvironment(string name, string? value)
    {
        if (value is null)
        {
            _ = unsetenv(name);
        }
        else
        {
            _ = setenv(name, value, 1);
        }

        Environment.SetEnvironmentVariable(name, value);
    }
}

/// <summary>A native pmem2 map with its function pointers resolved once (disposes the map).</summary>
internal sealed class NativeMap : IDisposable
{
    private nint _map;

    public NativeMap(nint map)
    {
        _map = map;
        Address = NativePmem2.pmem2_map_get_address(map);
        Size = NativePmem2.pmem2_map_get_size(map);
        Granularity = NativePmem2.pmem2_map_get_store_granularity(map);
        Memcpy = Marshal.GetDelegateForFunctionPointer<NativePmem2.MemmoveFn>(NativePmem2.pmem2_get_memcpy_fn(map));
        Memmove = Marshal.GetDelegateForFunctionPointer<NativePmem2.MemmoveFn>(NativePmem2.pmem2_get_memmove_fn(map));
        Memset = Marshal.GetDelegateForFunctionPointer<NativePmem2.MemsetFn>(NativePmem2.pmem2_get_memset_fn(map));
        Persist = Marshal.GetDelegateForFunctionPointer<NativePmem2.PersistFn>(NativePmem2.pmem2_get_persist_fn(map));
        Flush = Marshal.GetDelegateForFunctionPointer<NativePmem2.PersistFn>(NativePmem2.pmem2_get_flush_fn(map));
        Drain = Marshal.GetDelegateForFunctionPointer<NativePmem2.DrainFn>(NativePmem2.pmem2_get_drain_fn(map));
    }

    public nint Handle => _map;
    public nint Address { get; }
    public nuint Size { get; }
    /// <summary>enum pmem2_granularity: 0 BYTE, 1 CACHE_LINE, 2 PAGE.</summary>
    public int Granularity { get; }
    public NativePmem2.MemmoveFn Memcpy { get; }
    public NativePmem2.MemmoveFn Memmove { get; }
    public NativePmem2.MemsetFn Memset { get; }
    public NativePmem2.PersistFn Persist { get; }
    public NativePmem2.PersistFn Flush { get; }
    public NativePmem2.DrainFn Drain { get; }

    /// <summary>pmem2_map_new over a file descriptor; returns the error code (0 on success) and the map.</summary>
    public static int TryCreate(int fd, int granularity, ulong offset, ulong length, int sharing, uint protection, out NativeMap? map)
    {
        map = null;
        var rc = NativePmem2.pmem2_source_from_fd(out var src, fd);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            return TryCreate(src, granularity, offset, length, sharing, protection, out map);
        }
        finally
        {
            NativePmem2.pmem2_source_delete(ref src);
        }
    }

    /// <summary>pmem2_map_new over an existing native source.</summary>
    public static int TryCreate(nint src, int granularity, ulong offset, ulong length, int sharing, uint protection, out NativeMap? map)
    {
        map = null;
        var rc = NativePmem2.pmem2_config_new(out var cfg);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            if (granularity >= 0 && (rc = NativePmem2.pmem2_config_set_required_store_granularity(cfg, granularity)) != 0)
            {
                return rc;
            }

            if ((rc = NativePmem2.pmem2_config_set_offset(cfg, (nuint)offset)) != 0)
            {
                return rc;
            }

            NativePmem2.pmem2_config_set_length(cfg, (nuint)length);
            if ((rc = NativePmem2.pmem2_config_set_sharing(cfg, sharing)) != 0)
            {
                return rc;
            }

            if ((rc = NativePmem2.pmem2_config_set_protection(cfg, protection)) != 0)
            {
                return rc;
            }

            rc = NativePmem2.pmem2_map_new(out var m, cfg, src);
            if (rc == 0)
            {
                map = new NativeMap(m);
            }

            return rc;
        }
        finally
        {
            NativePmem2.pmem2_config_delete(ref cfg);
        }
    }

    public void Dispose()
    {
        if (_map != 0)
        {
            NativePmem2.pmem2_map_delete(ref _map);
        }
    }
}
