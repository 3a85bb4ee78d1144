namespace Pmem2.Internal;

/// <summary>
/// How libpmem2 decides a map's effective granularity (map.c L65-117, map_posix.c L480-498,
/// auto_flush_linux.c L138-185), plus the test seams that let the whole 3x3 matrix run on a machine
/// without DAX or eADR.
/// </summary>
internal static class GranularityPolicy
{
    /// <summary>Where the kernel lists NVDIMM bus devices (regions among them).</summary>
    public const string DefaultNdBusDevicesPath = "/sys/bus/nd/devices";

    public const string ForceVariable = "PMEM2_FORCE_GRANULARITY";

    /// <summary>libpmem2's message for "requested CACHE_LINE or BYTE, available PAGE".</summary>
    public const string NoMapSyncMessage =
        "requested granularity not available because fd doesn't point to DAX-enabled file " +
        "or kernel doesn't support MAP_SYNC flag (Linux >= 4.15)";

    /// <summary>libpmem2's message for "requested BYTE, available CACHE_LINE".</summary>
    public const string NoEadrMessage =
        "requested granularity not available because the platform doesn't support eADR";

    private static readonly AsyncLocal<bool?> s_mapSyncOverride = new();
    private static readonly AsyncLocal<string?> s_ndBusDevicesPath = new();

    /// <summary>
    /// Test seam: when set, a SHARED file mapping behaves as if the MAP_SHARED_VALIDATE|MAP_SYNC mmap
    /// succeeded (true) or failed with EOPNOTSUPP (false). The real mapping is then made with plain
    /// MAP_SHARED. Flows with the async context, so parallel tests do not see each other's value.
    /// </summary>
    internal static bool? MapSyncOverride
    {
        get => s_mapSyncOverride.Value;
        set => s_mapSyncOverride.Value = value;
    }

    /// <summary>Test seam: the sysfs directory searched for regions (default /sys/bus/nd/devices).</summary>
    internal static string NdBusDevicesPath
    {
        get => s_ndBusDevicesPath.Value ?? DefaultNdBusDevicesPath;
        set => s_ndBusDevicesPath.Value = value;
    }

    /// <summary>
    /// PMEM2_FORCE_GRANULARITY, read on every map like libpmem2's secure_getenv: from libc's environment
    /// (a native setenv is seen; .NET's Environment.SetEnvironmentVariable is not), and ignored in
    /// setuid / setgid processes (AT_SECURE). BYTE, CACHE_LINE, CACHELINE or PAGE, case-insensitive;
    /// anything else (libpmem2 logs it) is ignored.
    /// </summary>
    public static Pmem2Granularity? ReadForcedGranularity()
    {
        var value = ProcessEnvironment.GetSecure(ForceVariable);
        var forced = ParseForcedGranularity(value);
        if (forced is { } g)
        {
            Pmem2EventSource.Log.GranularityForced(value!, g.ToString());
        }

        return forced;
    }

    /// <summary>The PMEM2_FORCE_GRANULARITY spellings (null: not forced).</summary>
    internal static Pmem2Granularity? ParseForcedGranularity(string? value)
    {
        if (value is null)
        {
            return null;
        }

        if (value.Equals("BYTE", StringComparison.OrdinalIgnoreCase))
        {
            return Pmem2Granularity.Byte;
        }

        if (value.Equals("CACHE_LINE", StringComparison.OrdinalIgnoreCase) || value.Equals("CACHELINE", StringComparison.OrdinalIgnoreCase))
        {
            return Pmem2Granularity.CacheLine;
        }

        if (value.Equals("PAGE", StringComparison.OrdinalIgnoreCase))
        {
            return Pmem2Granularity.Page;
        }

        return null;
    }

    /// <summary>get_min_granularity (map.c L102-117).</summary>
    public static Pmem2Granularity MinGranularity(bool eadr, bool mapSync, Pmem2Sharing sharing)
    {
        // Private pages are never written back to the file, so nothing ever needs flushing.
        if (sharing == Pmem2Sharing.Private)
        {
            return Pmem2Granularity.Byte;
        }

        if (ReadForcedGranularity() is { } forced)
        {
            return forced;
        }

        if (!mapSync)
        {
            return Pmem2Granularity.Page;
        }

        return eadr ? Pmem2Granularity.Byte : Pmem2Granularity.CacheLine;
    }

    /// <summary>The GRANULARITY_NOT_SUPPORTED message for (requested, available), available &gt; requested.</summary>
    public static string NotSupportedMessage(Pmem2Granularity requested, Pmem2Granularity available) =>
        available == Pmem2Granularity.Page ? NoMapSyncMessage : NoEadrMessage;

    /// <summary>
    /// pmem2_auto_flush (auto_flush_linux.c): eADR only when the bus directory exists, holds at least one
    /// region (a symlink whose name contains "region"), and every region's persistence_domain reads
    /// exactly "cpu_cache\n". Any other content, a missing file or a read error means no eADR.
    /// System-wide, re-evaluated on every map like libpmem2.
    /// </summary>
    public static bool DetectEadr() => DetectEadr(NdBusDevicesPath);

    internal static bool DetectEadr(string busDevicesPath)
    {
        try
        {
            var bus = new DirectoryInfo(busDevicesPath);
            if (!bus.Exists)
            {
                return false;
            }

            var regions = 0;
            foreach (var entry in bus.EnumerateFileSystemInfos())
            {
                if (entry.LinkTarget is null || !entry.Name.Contains("region", StringComparison.Ordinal))
                {
                    continue;
                }

                regions++;
                if (!RegionHasCpuCacheDomain(Path.Combine(entry.FullName, "persistence_domain")))
                {
                    return false;
                }
            }

            return regions > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.SecurityException)
        {
            return false;
        }
    }

    private static bool RegionHasCpuCacheDomain(string path)
    {
        Span<byte> buf = stackalloc byte[32];
        int n;
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            n = RandomAccess.Read(handle, buf, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        return buf[..n].SequenceEqual("cpu_cache\n"u8);
    }
}
