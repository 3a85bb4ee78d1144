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

    [DllImport(Lib)] public static extern int pmem2_source_numa_node(nint src, out int node);
    [DllImport(Lib)] public static extern int pmem2_source_device_usc(nint src, out ulong usc);
    [DllImport(Lib)] public static extern int pmem2_source_device_id(nint src, nint id, ref nuint len);
    [DllImport(Lib)] public static extern int pmem2_source_pread_mcsafe(nint src, nint buf, nuint size, nuint offset);
    [DllImport(Lib)] public static extern int pmem2_source_pwrite_mcsafe(nint src, nint buf, nuint size, nuint offset);

    // --- bad blocks (struct pmem2_badblock { size_t offset; size_t length; } as a 2-element array) ---
    [DllImport(Lib)] public static extern int pmem2_badblock_context_new(out nint bbctx, nint src);
    [DllImport(Lib)] public static extern int pmem2_badblock_next(nint bbctx, [Out] nuint[] bb);
    [DllImport(Lib)] public static extern int pmem2_badblock_clear(nint bbctx, nuint[] bb);
    [DllImport(Lib)] public static extern void pmem2_badblock_context_delete(ref nint bbctx);

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

    [DllImport(Lib)] public static extern int pmem2_map_from_existing(out nint map, nint src, nint addr, nuint len, int granularity);
    [DllImport(Lib)] public static extern int pmem2_config_set_vm_reservation(nint cfg, nint rsv, nuint offset);

    // --- vm reservations ----------------------------------------------------------------
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_new(out nint rsv, nint addr, nuint size);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_delete(ref nint rsv);
    [DllImport(Lib)] public static extern nint pmem2_vm_reservation_get_address(nint rsv);
    [DllImport(Lib)] public static extern nuint pmem2_vm_reservation_get_size(nint rsv);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_extend(nint rsv, nuint size);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_shrink(nint rsv, nuint offset, nuint size);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_map_find(nint rsv, nuint offset, nuint len, out nint map);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_map_find_prev(nint rsv, nint map, out nint prev);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_map_find_next(nint rsv, nint map, out nint next);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_map_find_first(nint rsv, out nint map);
    [DllImport(Lib)] public static extern int pmem2_vm_reservation_map_find_last(nint rsv, out nint map);

    // --- errors -------------------------------------------------------------------------
    [DllImport(Lib)] private static extern nint pmem2_errormsg();

    /// <summary>pmem2_errormsg(): thread-local, and stale after a success (not cleared).</summary>
    public static string ErrorMessage() => Marshal.PtrToStringUTF8(pmem2_errormsg()) ?? string.Empty;

    /// <summary>The message <see cref="ResetErrorMessage"/> leaves in pmem2_errormsg().</summary>
    public const string ErrorMessageSentinel = "unknown granularity value 12345";

    /// <summary>
    /// Puts a known sentinel into this thread's pmem2_errormsg() buffer (release builds never clear it),
    /// so that a later failure can be told apart from one that set no message (see <see cref="TryGetFreshErrorMessage"/>).
    /// </summary>
    public static void ResetErrorMessage()
    {
        if (pmem2_config_new(out var cfg) == 0)
        {
            _ = pmem2_config_set_required_store_granularity(cfg, 12345);
            _ = pmem2_config_delete(ref cfg);
        }
    }

    /// <summary>The message of the last failure on this thread, or null when it still holds the sentinel of
    /// <see cref="ResetErrorMessage"/> (the failing call set no message of its own).</summary>
    public static string? TryGetFreshErrorMessage()
    {
        var message = ErrorMessage();
        return message == ErrorMessageSentinel ? null : message;
    }

    // --- libc environment ---------------------------------------------------------------
    [DllImport(LibC, EntryPoint = "getenv")] private static extern nint getenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    /// <summary>The value native getenv sees (may differ from Environment.GetEnvironmentVariable).</summary>
    public static string? GetNativeEnvironment(string name) => Marshal.PtrToStringUTF8(getenv(name));

    [DllImport(LibC, EntryPoint = "setenv")] private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);
    [DllImport(LibC, EntryPoint = "unsetenv")] private static extern int unsetenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    /// <summary>Sets (or, with null, removes) a variable in libc's environment only (as native code
    /// in the process would), leaving .NET's copy alone.</summary>
    public static void SetLibcEnvironmentOnly(string name, string? value) =>
        _ = value is null ? unsetenv(name) : setenv(name, value, 1);

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

    /// <summary>pmem2_map_new over an existing native source (optionally inside a vm reservation).</summary>
    public static int TryCreate(nint src, int granularity, ulong offset, ulong length, int sharing, uint protection, out NativeMap? map, nint reservation = 0, ulong reservationOffset = 0)
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

            if (reservation != 0 && (rc = NativePmem2.pmem2_config_set_vm_reservation(cfg, reservation, (nuint)reservationOffset)) != 0)
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

/// <summary>
/// The few raw libc calls the differential tests need to build file descriptors .NET will not open
/// (write-only, directory, fifo, closed) and to read files back independently of any mapping.
/// </summary>
internal static class NativeLibc
{
    private const string LibC = "libc";

    public const int O_RDONLY = 0;
    public const int O_WRONLY = 1;
    public const int O_RDWR = 2;
    public const int O_NONBLOCK = 0x800;
    public const int O_DIRECTORY = 0x10000;
    public const int O_CLOEXEC = 0x80000;

    [DllImport(LibC, EntryPoint = "open", SetLastError = true)]
    private static extern int open_([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

    [DllImport(LibC, EntryPoint = "close", SetLastError = true)]
    private static extern int close_(int fd);

    [DllImport(LibC, EntryPoint = "dup2", SetLastError = true)]
    private static extern int dup2_(int oldFd, int newFd);

    [DllImport(LibC, EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int mkfifo_([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int mode);

    [DllImport(LibC, EntryPoint = "fcntl", SetLastError = true)]
    private static extern int fcntl_(int fd, int cmd, int arg);

    /// <summary>open(2) with O_CLOEXEC; throws on failure.</summary>
    public static int Open(string path, int flags)
    {
        var fd = open_(path, flags | O_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new IOException($"open({path}, 0x{flags:x}) failed: errno {Marshal.GetLastPInvokeError()}");
        }

        return fd;
    }

    /// <summary>close(2); returns 0 or -errno.</summary>
    public static int Close(int fd) => close_(fd) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    /// <summary>dup2(2) (the copy is close-on-exec too); throws on failure.</summary>
    public static int Dup2(int oldFd, int newFd)
    {
        if (dup2_(oldFd, newFd) < 0)
        {
            throw new IOException($"dup2({oldFd}, {newFd}) failed: errno {Marshal.GetLastPInvokeError()}");
        }

        _ = fcntl_(newFd, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
        return newFd;
    }

    /// <summary>Whether <paramref name="fd"/> is open (fcntl F_GETFD).</summary>
    public static bool IsOpen(int fd) => fcntl_(fd, 1 /* F_GETFD */, 0) >= 0;

    /// <summary>mkfifo(3); throws on failure.</summary>
    public static void MakeFifo(string path)
    {
        if (mkfifo_(path, 0x180 /* 0600 */) != 0)
        {
            throw new IOException($"mkfifo({path}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }
}
