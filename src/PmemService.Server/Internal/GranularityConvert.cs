using Grpc.Core;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>Conversions between the proto <see cref="Granularity"/> and <see cref="Pmem2Granularity"/>.</summary>
internal static class GranularityConvert
{
    /// <summary>UNSPECIFIED means PAGE (the coarsest, which every file supports).</summary>
    public static Pmem2Granularity ToPmem2(Granularity value, string field) => value switch
    {
        Granularity.Unspecified or Granularity.Page => Pmem2Granularity.Page,
        Granularity.CacheLine => Pmem2Granularity.CacheLine,
        Granularity.Byte => Pmem2Granularity.Byte,
        _ => throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidGranularity,
            $"Unknown granularity value {(int)value}.", field),
    };

    public static Granularity ToProto(Pmem2Granularity value) => value switch
    {
        Pmem2Granularity.Byte => Granularity.Byte,
        Pmem2Granularity.CacheLine => Granularity.CacheLine,
        Pmem2Granularity.Page => Granularity.Page,
        _ => Granularity.Unspecified,
    };

    /// <summary>Whether a mapping with <paramref name="effective"/> granularity satisfies a client needing <paramref name="required"/>
    /// (finer is fine: BYTE &lt; CACHE_LINE &lt; PAGE).</summary>
    public static bool Satisfies(Pmem2Granularity effective, Pmem2Granularity required) => (int)effective <= (int)required;

    public static string Name(Pmem2Granularity value) => value switch
    {
        Pmem2Granularity.Byte => "BYTE",
        Pmem2Granularity.CacheLine => "CACHE_LINE",
        Pmem2Granularity.Page => "PAGE",
        _ => value.ToString(),
    };
}
