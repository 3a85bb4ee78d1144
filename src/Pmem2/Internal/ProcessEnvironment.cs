using System.Runtime.InteropServices;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>
/// The process environment as libc sees it. .NET keeps its own copy of the environment on Unix
/// (<see cref="Environment.SetEnvironmentVariable(string, string?)"/> does not call setenv, and a
/// native setenv is invisible to <see cref="Environment.GetEnvironmentVariable(string)"/>); libpmem2
/// reads libc's. These read libc's too.
/// </summary>
internal static unsafe class ProcessEnvironment
{
    /// <summary>getenv(3): the live libc environment (a native setenv in this process is visible).</summary>
    public static string? Get(string name)
    {
        var value = LibC.getenv(name);
        return value == null ? null : Marshal.PtrToStringUTF8((nint)value);
    }

    /// <summary>secure_getenv(3), as libpmem2 reads PMEM2_FORCE_GRANULARITY: null in a secure-execution
    /// process (setuid / setgid / file capabilities: getauxval(AT_SECURE) != 0), getenv otherwise.</summary>
    public static string? GetSecure(string name) => IsSecureExecution ? null : Get(name);

    /// <summary>getauxval(AT_SECURE) != 0 (fixed for the life of the process).</summary>
    public static bool IsSecureExecution { get; } = LibC.getauxval((nuint)LibC.AT_SECURE) != 0;
}
