using Pmem2.Oracle;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>Runs one map case through the native libpmem2.</summary>
internal static class NativeSide
{
    /// <summary>Source from fd (the source is deleted again); the outcome of pmem2_source_from_fd alone.</summary>
    public static Outcome SourceFromFd(int fd, out nint src)
    {
        NativePmem2.ResetErrorMessage();
        var rc = NativePmem2.pmem2_source_from_fd(out src, fd);
        return rc == 0 ? Outcome.Ok() : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
    }

    public static Outcome Size(nint src)
    {
        NativePmem2.ResetErrorMessage();
        var rc = NativePmem2.pmem2_source_size(src, out var size);
        return rc == 0 ? Outcome.Value(size) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
    }

    public static Outcome Alignment(nint src)
    {
        NativePmem2.ResetErrorMessage();
        var rc = NativePmem2.pmem2_source_alignment(src, out var alignment);
        return rc == 0 ? Outcome.Value(alignment) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
    }

    public static Outcome GetFd(nint src)
    {
        NativePmem2.ResetErrorMessage();
        var rc = NativePmem2.pmem2_source_get_fd(src, out var fd);
        return rc == 0 ? Outcome.Value((ulong)fd) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
    }

    /// <summary>pmem2_map_new with the case's config over an existing native source; the map is deleted again.</summary>
    public static Outcome Map(nint src, MapCase c)
    {
        NativePmem2.ResetErrorMessage();
        var rc = NativeMap.TryCreate(src, c.Granularity ?? -1, c.Offset, c.Length, c.Sharing, c.Protection, out var map);
        if (rc != 0)
        {
            return Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
        }

        using (map)
        {
            return Outcome.Mapped(map!.Size, map.Granularity, map.Address);
        }
    }
}

/// <summary>Runs the same cases through our C# implementation.</summary>
internal static class OursSide
{
    public static Outcome Run(Func<Outcome> action)
    {
        try
        {
            return action();
        }
        catch (Pmem2Exception e)
        {
            return Outcome.Failed((int)e.Code, e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return Outcome.Threw(e);
        }
    }

    public static Outcome SourceFromFd(int fd, out Pmem2Source? src)
    {
        Pmem2Source? created = null;
        var outcome = Run(() =>
        {
            created = Pmem2Source.FromBorrowedFileDescriptor(fd);
            return Outcome.Ok();
        });
        src = created;
        return outcome;
    }

    public static Outcome Size(Pmem2Source src) => Run(() => Outcome.Value(src.GetSize()));

    public static Outcome Alignment(Pmem2Source src) => Run(() => Outcome.Value(src.GetAlignment()));

    public static Outcome GetFd(Pmem2Source src) => Run(() => Outcome.Value((ulong)src.GetFileDescriptor()));

    /// <summary>Builds the config in libpmem2's setter order (granularity, offset, length, sharing, protection) and maps.</summary>
    public static Outcome Map(Pmem2Source src, MapCase c) => Run(() =>
    {
        var cfg = new Pmem2Config();
        if (c.Granularity is { } g)
        {
            cfg.RequiredStoreGranularity = (Pmem2Granularity)g;
        }

        cfg.Offset = c.Offset;
        cfg.Length = c.Length;
        cfg.Sharing = (Pmem2Sharing)c.Sharing;
        cfg.Protection = (Pmem2Protection)c.Protection;
        using var map = Pmem2Map.Create(cfg, src);
        return Outcome.Mapped(map.Size, (int)map.StoreGranularity, map.Address);
    });
}
