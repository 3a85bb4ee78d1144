namespace Pmem2;

/// <summary>
/// Mapping parameters (struct pmem2_config). Setters validate like libpmem2's and throw
/// <see cref="Pmem2Exception"/>, leaving the old value in place. CONTRACT STUB.
/// </summary>
public sealed class Pmem2Config
{
    /// <summary>Required store granularity: mandatory (null = not set, GRANULARITY_NOT_SET at map time).
    /// An undefined enum value throws GRANULARITY_NOT_SUPPORTED.</summary>
    public Pmem2Granularity? RequiredStoreGranularity { get => throw new NotImplementedException(); set => throw new NotImplementedException(); }

    /// <summary>Offset into the source; &gt; INT64_MAX throws OFFSET_OUT_OF_RANGE.</summary>
    public ulong Offset { get => throw new NotImplementedException(); set => throw new NotImplementedException(); }

    /// <summary>Length; 0 means to the end of the source. Validated at map time.</summary>
    public ulong Length { get => throw new NotImplementedException(); set => throw new NotImplementedException(); }

    /// <summary>Sharing; an undefined value throws INVALID_SHARING_VALUE.</summary>
    public Pmem2Sharing Sharing { get => throw new NotImplementedException(); set => throw new NotImplementedException(); }

    /// <summary>Protection (default Read|Write); unknown bits throw INVALID_PROT_FLAG.</summary>
    public Pmem2Protection Protection { get => throw new NotImplementedException(); set => throw new NotImplementedException(); }
}
