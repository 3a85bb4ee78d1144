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
    /// <summary>PMEM2_E_UNKNOWN: unspecified error.</summary>
    Unknown = -100000,
    /// <summary>PMEM2_E_NOSUPP: the operation is not supported (e.g. deep flush of anonymous memory).</summary>
    NoSupp = -100001,
    /// <summary>PMEM2_E_FILE_HANDLE_NOT_SET (Windows leftover, unused on Linux).</summary>
    FileHandleNotSet = -100003,
    /// <summary>PMEM2_E_INVALID_FILE_HANDLE: negative, closed (EBADF) or write-only descriptor.</summary>
    InvalidFileHandle = -100004,
    /// <summary>PMEM2_E_INVALID_FILE_TYPE: directory, FIFO, socket, block device or non-DAX character device.</summary>
    InvalidFileType = -100005,
    /// <summary>PMEM2_E_MAP_RANGE: offset + length overflows or ends past the end of the source.</summary>
    MapRange = -100006,
    /// <summary>PMEM2_E_MAPPING_EXISTS: the address range is occupied (mmap EEXIST).</summary>
    MappingExists = -100007,
    /// <summary>PMEM2_E_GRANULARITY_NOT_SET: mapping without a required store granularity.</summary>
    GranularityNotSet = -100008,
    /// <summary>PMEM2_E_GRANULARITY_NOT_SUPPORTED: invalid value, or the platform offers only a coarser granularity.</summary>
    GranularityNotSupported = -100009,
    /// <summary>PMEM2_E_OFFSET_OUT_OF_RANGE: offset greater than INT64_MAX.</summary>
    OffsetOutOfRange = -100010,
    /// <summary>PMEM2_E_OFFSET_UNALIGNED: offset not a multiple of the source alignment.</summary>
    OffsetUnaligned = -100011,
    /// <summary>PMEM2_E_INVALID_ALIGNMENT_FORMAT: unreadable device DAX alignment.</summary>
    InvalidAlignmentFormat = -100012,
    /// <summary>PMEM2_E_INVALID_ALIGNMENT_VALUE: alignment not a power of two.</summary>
    InvalidAlignmentValue = -100013,
    /// <summary>PMEM2_E_INVALID_SIZE_FORMAT: unreadable device DAX size.</summary>
    InvalidSizeFormat = -100014,
    /// <summary>PMEM2_E_LENGTH_UNALIGNED: length not a multiple of the source alignment.</summary>
    LengthUnaligned = -100015,
    /// <summary>PMEM2_E_MAPPING_NOT_FOUND: no such registered mapping.</summary>
    MappingNotFound = -100016,
    /// <summary>PMEM2_E_BUFFER_TOO_SMALL: caller buffer too short.</summary>
    BufferTooSmall = -100017,
    /// <summary>PMEM2_E_SOURCE_EMPTY: the source has length 0.</summary>
    SourceEmpty = -100018,
    /// <summary>PMEM2_E_INVALID_SHARING_VALUE: unknown sharing type.</summary>
    InvalidSharingValue = -100019,
    /// <summary>PMEM2_E_SRC_DEVDAX_PRIVATE: device DAX cannot be mapped PRIVATE.</summary>
    SrcDevdaxPrivate = -100020,
    /// <summary>PMEM2_E_INVALID_ADDRESS_REQUEST_TYPE (1.9 leftover, unused).</summary>
    InvalidAddressRequestType = -100021,
    /// <summary>PMEM2_E_ADDRESS_UNALIGNED: address not aligned as required.</summary>
    AddressUnaligned = -100022,
    /// <summary>PMEM2_E_ADDRESS_NULL (leftover, unused).</summary>
    AddressNull = -100023,
    /// <summary>PMEM2_E_DEEP_FLUSH_RANGE: deep flush range not inside the map.</summary>
    DeepFlushRange = -100024,
    /// <summary>PMEM2_E_INVALID_REGION_FORMAT (leftover, unused).</summary>
    InvalidRegionFormat = -100025,
    /// <summary>PMEM2_E_DAX_REGION_NOT_FOUND: no NVDIMM region for the source.</summary>
    DaxRegionNotFound = -100026,
    /// <summary>PMEM2_E_INVALID_DEV_FORMAT: malformed sysfs dev file.</summary>
    InvalidDevFormat = -100027,
    /// <summary>PMEM2_E_CANNOT_READ_BOUNDS: namespace bounds unreadable.</summary>
    CannotReadBounds = -100028,
    /// <summary>PMEM2_E_NO_BAD_BLOCK_FOUND: no (more) bad blocks.</summary>
    NoBadBlockFound = -100029,
    /// <summary>PMEM2_E_LENGTH_OUT_OF_RANGE: length beyond what the container allows.</summary>
    LengthOutOfRange = -100030,
    /// <summary>PMEM2_E_INVALID_PROT_FLAG: unknown protection bits.</summary>
    InvalidProtFlag = -100031,
    /// <summary>PMEM2_E_NO_ACCESS: mmap EACCES (e.g. writable SHARED map of a read-only descriptor).</summary>
    NoAccess = -100032,
    /// <summary>PMEM2_E_VM_RESERVATION_NOT_EMPTY: the reservation still holds maps.</summary>
    VmReservationNotEmpty = -100033,
    /// <summary>PMEM2_E_MAP_EXISTS: the range overlaps a registered map.</summary>
    MapExists = -100034,
    /// <summary>PMEM2_E_FILE_DESCRIPTOR_NOT_SET: anonymous source has no descriptor.</summary>
    FileDescriptorNotSet = -100035,
    /// <summary>PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED: operation needs a file source.</summary>
    SourceTypeNotSupported = -100036,
    /// <summary>PMEM2_E_IO_FAIL: I/O error (EIO or a machine check on a bad block).</summary>
    IoFail = -100037,
}
