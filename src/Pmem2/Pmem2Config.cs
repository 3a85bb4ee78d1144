using Pmem2.Internal;

namespace Pmem2;

/// <summary>
/// Mapping parameters (struct pmem2_config). Setters validate like libpmem2's and throw
/// <see cref="Pmem2Exception"/>, leaving the old value in place. Defaults (pmem2_config_init):
/// granularity not set, offset 0, length 0 (to the end of the source), SHARED, READ|WRITE.
/// A config may be reused for several maps and with several sources.
/// </summary>
public sealed partial class Pmem2Config
{
    private const Pmem2Protection KnownProtection = Pmem2Protection.Read | Pmem2Protection.Write | Pmem2Protection.Exec;

    private Pmem2Granularity? _granularity;
    private ulong _offset;
    private Pmem2Sharing _sharing = Pmem2Sharing.Shared;
    private Pmem2Protection _protection = Pmem2Protection.Read | Pmem2Protection.Write;

    /// <summary>Required store granularity: mandatory (null = not set, GRANULARITY_NOT_SET at map time).
    /// An undefined enum value throws GRANULARITY_NOT_SUPPORTED. It is the coarsest granularity the
    /// application tolerates; the map's effective granularity may be finer.</summary>
    public Pmem2Granularity? RequiredStoreGranularity
    {
        get => _granularity;
        set
        {
            if (value is { } g && g is not (Pmem2Granularity.Byte or Pmem2Granularity.CacheLine or Pmem2Granularity.Page))
            {
                Errors.Throw(Pmem2ErrorCode.GranularityNotSupported, $"unknown granularity value {(int)g}");
            }

            _granularity = value;
        }
    }

    /// <summary>Offset into the source; &gt; INT64_MAX throws OFFSET_OUT_OF_RANGE (mmap takes an off_t).
    /// Alignment is checked at map time.</summary>
    public ulong Offset
    {
        get => _offset;
        set
        {
            if (value > long.MaxValue)
            {
                Errors.Throw(Pmem2ErrorCode.OffsetOutOfRange, "offset is greater than INT64_MAX");
            }

            _offset = value;
        }
    }

    /// <summary>Length; 0 means to the end of the source. Validated at map time.</summary>
    public ulong Length { get; set; }

    /// <summary>Sharing; an undefined value throws INVALID_SHARING_VALUE.</summary>
    public Pmem2Sharing Sharing
    {
        get => _sharing;
        set
        {
            if (value is not (Pmem2Sharing.Shared or Pmem2Sharing.Private))
            {
                Errors.Throw(Pmem2ErrorCode.InvalidSharingValue, $"unknown sharing value {(int)value}");
            }

            _sharing = value;
        }
    }

    /// <summary>Protection (default Read|Write); unknown bits throw INVALID_PROT_FLAG (a raw
    /// PROT_WRITE = 2 is refused, as in libpmem2).</summary>
    public Pmem2Protection Protection
    {
        get => _protection;
        set
        {
            if ((value & ~KnownProtection) != 0)
            {
                Errors.Throw(Pmem2ErrorCode.InvalidProtFlag, $"invalid flag {(uint)value}");
            }

            _protection = value;
        }
    }

    /// <summary>The reservation the map is placed into (null: anywhere), see <see cref="SetVmReservation"/>.</summary>
    public Pmem2VmReservation? VmReservation { get; private set; }

    /// <summary>Offset of the map inside <see cref="VmReservation"/>.</summary>
    public ulong VmReservationOffset { get; private set; }

    /// <summary>pmem2_config_set_vm_reservation: place the map at <paramref name="offset"/> inside
    /// <paramref name="reservation"/> (null clears it). Checked at map time (page-aligned offset,
    /// enough room, region free).</summary>
    public void SetVmReservation(Pmem2VmReservation? reservation, ulong offset)
    {
        VmReservation = reservation;
        VmReservationOffset = reservation is null ? 0 : offset;
    }

    /// <summary>A copy of this config (the map keeps its own snapshot).</summary>
    internal Pmem2Config Clone() => (Pmem2Config)MemberwiseClone();
}
