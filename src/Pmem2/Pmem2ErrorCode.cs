namespace Pmem2;

/// <summary>
/// libpmem2's error codes (PMEM2_E_*), with the exact numeric values of base.h.
/// Operations may also fail with a negated errno (for example -22 for EINVAL), which is carried
/// as the raw value of this enum.
/// </summary>
public enum Pmem2ErrorCode
{
    /// <summary>Success (not thrown).</summary>
    Ok = 0,
    Unknown = -100000,
    NoSupp = -100001,
    FileHandleNotSet = -100003,
    InvalidFileHandle = -100004,
    InvalidFileType = -100005,
    MapRange = -100006,
    MappingExists = -100007,
    GranularityNotSet = -100008,
    GranularityNotSupported = -100009,
    OffsetOutOfRange = -100010,
    OffsetUnaligned = -100011,
    InvalidAlignmentFormat = -100012,
    InvalidAlignmentValue = -100013,
    InvalidSizeFormat = -100014,
    LengthUnaligned = -100015,
    MappingNotFound = -100016,
    BufferTooSmall = -100017,
    SourceEmpty = -100018,
    InvalidSharingValue = -100019,
    SrcDevdaxPrivate = -100020,
    InvalidAddressRequestType = -100021,
    AddressUnaligned = -100022,
    AddressNull = -100023,
    DeepFlushRange = -100024,
    InvalidRegionFormat = -100025,
    DaxRegionNotFound = -100026,
    InvalidDevFormat = -100027,
    CannotReadBounds = -100028,
    NoBadBlockFound = -100029,
    LengthOutOfRange = -100030,
    InvalidProtFlag = -100031,
    NoAccess = -100032,
    VmReservationNotEmpty = -100033,
    MapExists = -100034,
    FileDescriptorNotSet = -100035,
    SourceTypeNotSupported = -100036,
    IoFail = -100037,
}
