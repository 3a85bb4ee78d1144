using Pmem2.Internal;
using Pmem2.Internal.Flush;

namespace Pmem2;

/// <summary>Process-wide facts chosen at start-up: CPU flush instruction and copy engine.</summary>
public static class Pmem2Platform
{
    /// <summary>Whether this platform is supported (Linux x86-64). Other calls throw PlatformNotSupportedException when not.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64;

    /// <summary>The cache-flush instruction in use for CACHE_LINE granularity (chosen once by CPUID,
    /// PMEM_NO_CLWB and PMEM_NO_CLFLUSHOPT; <see cref="Pmem2FlushInstruction.Msync"/> when executable
    /// memory for the flush routine was refused).</summary>
    public static Pmem2FlushInstruction FlushInstruction
    {
        get
        {
            PlatformGuard.EnsureSupported();
            return CpuFlush.Instruction;
        }
    }

    /// <summary>Why the msync fallback is in use, or null when a CPU flush instruction is in use.</summary>
    public static string? FlushFallbackReason
    {
        get
        {
            PlatformGuard.EnsureSupported();
            return CpuFlush.FallbackReason;
        }
    }

    /// <summary>The copy engine in use ("avx512f", "avx", "sse2", "generic", "libc").</summary>
    public static string CopyEngine => Internal.Mem.MemOps.EngineName;
}
