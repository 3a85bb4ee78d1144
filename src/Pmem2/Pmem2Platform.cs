namespace Pmem2;

/// <summary>Process-wide facts chosen at start-up: CPU flush instruction and copy engine. CONTRACT STUB.</summary>
public static class Pmem2Platform
{
    /// <summary>Whether this platform is supported (Linux x86-64). Other calls throw PlatformNotSupportedException when not.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64;

    /// <summary>The cache-flush instruction in use for CACHE_LINE granularity.</summary>
    public static Pmem2FlushInstruction FlushInstruction => throw new NotImplementedException();

    /// <summary>The copy engine in use ("avx512f", "avx", "sse2", "generic", "libc").</summary>
    public static string CopyEngine => Internal.Mem.MemOps.EngineName;
}
