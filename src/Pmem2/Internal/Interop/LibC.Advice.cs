using System.Runtime.InteropServices;
using size_t = nuint;

namespace Pmem2.Internal.Interop;

internal static unsafe partial class LibC
{
    public const int MADV_RANDOM = 1;

    [LibraryImport(Lib, EntryPoint = "madvise", SetLastError = true)]
    public static partial int madvise(void* addr, size_t length, int advice);
}
