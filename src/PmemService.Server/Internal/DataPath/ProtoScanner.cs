using System.Buffers;
using System.Text;

namespace PmemService.Server.Internal.DataPath;

/// <summary>
/// Minimal protobuf wire-format reader over a gRPC payload sequence, for the zero-copy write path:
/// it walks tags and lengths (skipping field bodies without touching their bytes) so the request's
/// scalar fields are known — in whatever order they arrive on the wire, last occurrence wins, as in
/// protobuf — before a single data byte is copied. Every read is bounds-checked; a truncated or
/// otherwise invalid message makes the scan fail (the caller answers INVALID_ARGUMENT MALFORMED_MESSAGE).
/// </summary>
internal static class ProtoScanner
{
    private const int WireVarint = 0;
    private const int WireFixed64 = 1;
    private const int WireLen = 2;
    private const int WireStartGroup = 3;
    private const int WireEndGroup = 4;
    private const int WireFixed32 = 5;
    private const int MaxGroupDepth = 64;

    /// <summary>Longest region name accepted from the wire before decoding (names are at most 128 characters).</summary>
    private const int MaxNameBytes = 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The fields of a pmem.v1.WriteRegionRequest; <see cref="DataStart"/> locates the last <c>data</c> field in the payload.</summary>
    internal struct WriteRegionFields
    {
        public string Name;
        public bool NameTooLong;
        public ulong Offset;
        public bool DeferPersist;
        public ulong FlushType;
        public long DataStart;
        public long DataLength;
    }

    /// <summary>Scans a WriteRegionRequest: name = 1 (string), offset = 2 (uint64), data = 3 (bytes), defer_persist = 4 (bool), flush_type = 5 (enum).</summary>
    public static bool TryScanWriteRegion(in ReadOnlySequence<byte> payload, out WriteRegionFields fields, out string? error)
    {
        fields = new WriteRegionFields { Name = string.Empty };
        var reader = new SequenceReader<byte>(payload);
        long nameStart = -1, nameLength = 0;
        while (!reader.End)
        {
            if (!TryReadTag(ref reader, out var field, out var wire, out error))
            {
                return false;
            }

            switch ((field, wire))
            {
                case (1, WireLen):
                    if (!TryReadLength(ref reader, out nameLength, out error))
                    {
                        return false;
                    }

                    nameStart = reader.Consumed;
                    reader.Advance(nameLength);
                    break;
                case (2, WireVarint):
                    if (!TryReadVarint(ref reader, out fields.Offset))
                    {
                        error = "truncated or overlong varint in field 2 (offset)";
                        return false;
                    }

                    break;
                case (3, WireLen):
                    if (!TryReadLength(ref reader, out fields.DataLength, out error))
                    {
                        return false;
                    }

                    fields.DataStart = reader.Consumed;
                    reader.Advance(fields.DataLength);
                    break;
                case (4, WireVarint):
                    if (!TryReadVarint(ref reader, out var flag))
                    {
                        error = "truncated or overlong varint in field 4 (defer_persist)";
                        return false;
                    }

                    fields.DeferPersist = flag != 0;
                    break;
                case (5, WireVarint):
                    if (!TryReadVarint(ref reader, out fields.FlushType))
                    {
                        error = "truncated or overlong varint in field 5 (flush_type)";
                        return false;
                    }

                    break;
                default:
                    if (!TrySkip(ref reader, field, wire, 0, out error))
                    {
                        return false;
                    }

                    break;
            }
        }

        if (nameStart >= 0 && !TryDecodeName(payload, nameStart, nameLength, ref fields, out error))
        {
            return false;
        }

        error = null;
        return true;
    }

    /// <summary>Which member of StreamWriteRegionRequest's <c>payload</c> oneof the message ends up with.</summary>
    internal enum StreamPayload
    {
        None,
        Header,
        Data,
    }

    /// <summary>
    /// Scans a StreamWriteRegionRequest (header = 1, data = 2, a oneof: the last one on the wire wins).
    /// For <see cref="StreamPayload.Data"/> the last data field's position and length are returned.
    /// </summary>
    public static bool TryScanStreamWrite(in ReadOnlySequence<byte> payload, out StreamPayload kind, out long dataStart, out long dataLength, out string? error)
    {
        kind = StreamPayload.None;
        dataStart = 0;
        dataLength = 0;
        var reader = new SequenceReader<byte>(payload);
        while (!reader.End)
        {
            if (!TryReadTag(ref reader, out var field, out var wire, out error))
            {
                return false;
            }

            if (field is 1 or 2 && wire == WireLen)
            {
                if (!TryReadLength(ref reader, out var length, out error))
                {
                    return false;
                }

                if (field == 2)
                {
                    kind = StreamPayload.Data;
                    dataStart = reader.Consumed;
                    dataLength = length;
                }
                else
                {
                    kind = StreamPayload.Header;
                }

                reader.Advance(length);
            }
            else if (!TrySkip(ref reader, field, wire, 0, out error))
            {
                return false;
            }
        }

        error = null;
        return true;
    }

    private static bool TryDecodeName(in ReadOnlySequence<byte> payload, long start, long length, ref WriteRegionFields fields, out string? error)
    {
        error = null;
        if (length > MaxNameBytes)
        {
            fields.NameTooLong = true;
            return true;
        }

        try
        {
            fields.Name = length == 0 ? string.Empty : StrictUtf8.GetString(payload.Slice(start, length));
            return true;
        }
        catch (DecoderFallbackException)
        {
            error = "field 1 (name) is not valid UTF-8";
            return false;
        }
    }

    private static bool TryReadTag(ref SequenceReader<byte> reader, out int field, out int wire, out string? error)
    {
        field = 0;
        wire = 0;
        if (!TryReadVarint(ref reader, out var tag) || tag > uint.MaxValue)
        {
            error = $"truncated or invalid tag at byte {reader.Consumed}";
            return false;
        }

        field = (int)(tag >> 3);
        wire = (int)(tag & 7);
        if (field == 0)
        {
            error = $"invalid tag 0 at byte {reader.Consumed}";
            return false;
        }

        error = null;
        return true;
    }

    private static bool TryReadLength(ref SequenceReader<byte> reader, out long length, out string? error)
    {
        length = 0;
        if (!TryReadVarint(ref reader, out var value) || value > int.MaxValue)
        {
            error = $"invalid length prefix at byte {reader.Consumed}";
            return false;
        }

        if ((long)value > reader.Remaining)
        {
            error = $"length-delimited field of {value} bytes runs past the end of the message ({reader.Remaining} bytes left)";
            return false;
        }

        length = (long)value;
        error = null;
        return true;
    }

    private static bool TrySkip(ref SequenceReader<byte> reader, int field, int wire, int depth, out string? error)
    {
        error = null;
        switch (wire)
        {
            case WireVarint:
                if (!TryReadVarint(ref reader, out _))
                {
                    error = $"truncated or overlong varint in field {field}";
                    return false;
                }

                return true;
            case WireFixed64:
            case WireFixed32:
                var size = wire == WireFixed64 ? 8 : 4;
                if (reader.Remaining < size)
                {
                    error = $"truncated fixed-size field {field}";
                    return false;
                }

                reader.Advance(size);
                return true;
            case WireLen:
                if (!TryReadLength(ref reader, out var length, out error))
                {
                    return false;
                }

                reader.Advance(length);
                return true;
            case WireStartGroup:
                if (depth >= MaxGroupDepth)
                {
                    error = "groups nested too deeply";
                    return false;
                }

                while (true)
                {
                    if (reader.End)
                    {
                        error = $"unterminated group {field}";
                        return false;
                    }

                    if (!TryReadTag(ref reader, out var inner, out var innerWire, out error))
                    {
                        return false;
                    }

                    if (innerWire == WireEndGroup)
                    {
                        if (inner != field)
                        {
                            error = $"end of group {inner} does not match group {field}";
                            return false;
                        }

                        return true;
                    }

                    if (!TrySkip(ref reader, inner, innerWire, depth + 1, out error))
                    {
                        return false;
                    }
                }

            default:
                error = $"invalid wire type {wire} for field {field}";
                return false;
        }
    }

    /// <summary>Reads a base-128 varint of at most 10 bytes (as protobuf does; the excess high bits of the 10th byte are dropped).</summary>
    internal static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                return false;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }
}
