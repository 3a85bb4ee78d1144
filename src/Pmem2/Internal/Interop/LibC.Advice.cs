using System.Runtime.InteropServices;
using size_t = nuint;

namespace Pmem2.Internal.Interop;

internal static unsafe partial class LibC
{
    public const int MADV_RANDOM = 1;

    /// <summary>Linux 5.14+: fault the range in readable (page tables filled, no data change).</summary>
    public const int MADV_POPULATE_READ = 22;

    /// <summary>Linux 5.14+: fault the range in writable, as a write would (no data change).</summary>
    public const int MADV_POPULATE_WRITE = 23;

    [LibraryImport(Lib, EntryPoint = "madvise", SetLastError = true)]
    public static partial int madvise(void* addr, size_t length, int advice);
}
