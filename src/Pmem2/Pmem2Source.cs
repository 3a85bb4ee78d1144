using Microsoft.Win32.SafeHandles;

namespace Pmem2;

/// <summary>
/// What a mapping is made of (struct pmem2_source): a file descriptor of a regular file or a
/// device DAX, or anonymous memory. CONTRACT STUB: signatures agreed between the engine and its
/// users; bodies are filled in by the core implementation.
/// </summary>
public sealed class Pmem2Source : IDisposable
{
    private Pmem2Source() { }

    /// <summary>pmem2_source_from_fd over a handle. The handle is not duplicated nor owned.</summary>
    public static Pmem2Source FromHandle(SafeFileHandle handle) => throw new NotImplementedException();

    /// <summary>pmem2_source_from_fd over a raw descriptor (not owned).</summary>
    public static Pmem2Source FromFileDescriptor(int fd) => throw new NotImplementedException();

    /// <summary>Opens <paramref name="path"/> and wraps it; the source owns (and closes) the handle.</summary>
    public static Pmem2Source Open(string path, FileAccess access = FileAccess.ReadWrite) => throw new NotImplementedException();

    /// <summary>pmem2_source_from_anon: zero-filled anonymous memory of <paramref name="size"/> bytes.</summary>
    public static Pmem2Source FromAnonymous(ulong size) => throw new NotImplementedException();

    /// <summary>Kind of source.</summary>
    public Pmem2SourceType Type => throw new NotImplementedException();

    /// <summary>The wrapped handle (null for anonymous sources).</summary>
    public SafeFileHandle? Handle => throw new NotImplementedException();

    /// <summary>pmem2_source_get_fd. Throws FILE_DESCRIPTOR_NOT_SET for anonymous sources.</summary>
    public int GetFileDescriptor() => throw new NotImplementedException();

    /// <summary>pmem2_source_size: live size (fstat on every call for files).</summary>
    public ulong GetSize() => throw new NotImplementedException();

    /// <summary>pmem2_source_alignment: required offset / length alignment.</summary>
    public ulong GetAlignment() => throw new NotImplementedException();

    /// <summary>pmem2_source_delete. Closes the handle only when the source owns it.</summary>
    public void Dispose() => throw new NotImplementedException();
}
