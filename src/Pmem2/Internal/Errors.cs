using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Pmem2.Internal;

/// <summary>Builds <see cref="Pmem2Exception"/>s with libpmem2's codes and message shapes.</summary>
internal static class Errors
{
    /// <summary>strerror(errno), e.g. "Permission denied".</summary>
    public static string StrError(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>libpmem2's ERR("!what"): "what: strerror(errno)" with the code -errno (PMEM2_E_ERRNO).</summary>
    public static Pmem2Exception FromErrno(int errno, string what) =>
        new((Pmem2ErrorCode)(-errno), $"{what}: {StrError(errno)}");

    /// <summary>An errno-built message carrying a translated PMEM2_E_* code.</summary>
    public static Pmem2Exception FromErrno(Pmem2ErrorCode code, int errno, string what) =>
        new(code, $"{what}: {StrError(errno)}");

    /// <summary>A pointer as glibc's printf "%p" prints it in libpmem2's messages: "0x7f12a4c00000",
    /// or "(nil)" for the null pointer.</summary>
    public static string Pointer(nint address) =>
        address == 0 ? "(nil)" : $"0x{(nuint)address:x}";

    [DoesNotReturn]
    public static void Throw(Pmem2ErrorCode code, string message) => throw new Pmem2Exception(code, message);

    [DoesNotReturn]
    public static void ThrowErrno(int errno, string what) => throw FromErrno(errno, what);
}

/// <summary>Refuses every platform but Linux on x86-64 with a clear exception at the first call.</summary>
internal static class PlatformGuard
{
    public static void EnsureSupported()
    {
        if (!Pmem2Platform.IsSupported)
        {
            ThrowUnsupported();
        }
    }

    [DoesNotReturn]
    private static void ThrowUnsupported() =>
        throw new PlatformNotSupportedException(
            $"Pmem2 supports only Linux on x86-64 (this process runs on {RuntimeInformation.OSDescription}, " +
            $"{RuntimeInformation.ProcessArchitecture}): it relies on mmap/msync/MAP_SYNC and on x86 cache-flush instructions.");
}
