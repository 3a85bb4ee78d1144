using System.Globalization;
using System.Text;
using Grpc.Core;
using Microsoft.Win32.SafeHandles;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal.Sharing;

/// <summary>
/// Resumable upload records (issue 14): per region, for each client-chosen upload id, the region offset up
/// to which that upload's bytes are persistent. Kept in the extended attribute <c>user.pmem.uploads</c> of
/// the region file (set and fsynced by <see cref="Pmem2FileAttributes"/>), so it is as durable as the region,
/// lives in the inode and goes away with it when the region is deleted. Bounded: at most
/// <see cref="PmemServiceOptions.MaxUploadsPerRegion"/> records (the least recently updated is dropped) and
/// records older than <see cref="PmemServiceOptions.UploadRecordTtl"/> are dropped. A record is written only
/// after the persist of the bytes it covers succeeded.
/// Value: lines of ASCII, the first <c>v1</c>, then <c>ID START PERSISTED UNIXMS</c>.
/// </summary>
internal sealed class RegionUploads
{
    public const string AttributeName = "user.pmem.uploads";
    public const int MaxIdLength = 64;

    private const int EOPNOTSUPP = 95;

    // Read-modify-write of one attribute: serialized (updates are rare: a stream's start, checkpoints and end).
    private readonly Lock _lock = new();
    private readonly int _maxRecords;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;

    public RegionUploads(int maxRecords, TimeSpan ttl, TimeProvider? time = null)
    {
        _maxRecords = maxRecords;
        _ttl = ttl;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Throws INVALID_ARGUMENT INVALID_UPLOAD_ID unless <paramref name="id"/> is 1 to 64 characters of [A-Za-z0-9._-].</summary>
    public static string ValidateId(string id, string field = "upload_id")
    {
        if (id.Length is 0 or > MaxIdLength || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidUploadId,
                $"upload id '{(id.Length > MaxIdLength ? id[..MaxIdLength] + "..." : id)}' must be 1 to {MaxIdLength} characters of [A-Za-z0-9._-].", field);
        }

        return id;
    }

    /// <summary>The record of <paramref name="id"/> in the region file at <paramref name="path"/>, or null.</summary>
    public UploadInfo? Get(string name, string path, string id)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            return Read(handle).FirstOrDefault(r => r.UploadId == id);
        }
        catch (FileNotFoundException)
        {
            throw PmemServiceException.NotFound(name);
        }
        catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP)
        {
            return null;
        }
    }

    /// <summary>
    /// Records that the stream of upload <paramref name="id"/> that started at <paramref name="streamStart"/>
    /// has its bytes persistent up to <paramref name="persistedEnd"/>. A stream continuing the upload (starting
    /// inside [start, persisted] of the record) extends it; one starting elsewhere replaces it.
    /// When <paramref name="file"/> is the descriptor <paramref name="mappedBy"/> was made from, pass the map: the
    /// record's fsync then counts as a persist of that map (a write-back error it is told about fails the map,
    /// sticky, instead of being consumed here and hidden from the map's next msync: a Pmem2Exception with
    /// IsPersistFailure), and a map whose persist failed refuses the record.
    /// </summary>
    public UploadInfo Record(string name, SafeFileHandle file, string id, ulong streamStart, ulong persistedEnd, Pmem2Map? mappedBy = null)
    {
        try
        {
            lock (_lock)
            {
                var records = Read(file);
                var existing = records.FirstOrDefault(r => r.UploadId == id);
                var record = new UploadInfo { UploadId = id, StartOffset = streamStart, PersistedOffset = persistedEnd, UpdatedUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds() };
                if (existing is not null)
                {
                    records.Remove(existing);
                    if (streamStart >= existing.StartOffset && streamStart <= existing.PersistedOffset)
                    {
                        record.StartOffset = existing.StartOffset;
                        record.PersistedOffset = Math.Max(existing.PersistedOffset, persistedEnd);
                    }
                }

                records.Add(record);
                var kept = records.OrderByDescending(r => r.UpdatedUnixMs).Take(_maxRecords).ToList();
                var value = Encoding.ASCII.GetBytes(Format(kept));
                if (mappedBy is null)
                {
                    Pmem2FileAttributes.Set(file, AttributeName, value);
                }
                else
                {
                    Pmem2FileAttributes.Set(file, AttributeName, value, mappedBy);
                }
                return record;
            }
        }
        catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP)
        {
            throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.ContentMetadataNotSupported,
                $"The pool's filesystem does not support user extended attributes, so uploads to region '{name}' cannot be made resumable (send no upload_id).", "header.upload_id", e)
                .With("region", name);
        }
    }

    private List<UploadInfo> Read(SafeFileHandle handle)
    {
        var value = Pmem2FileAttributes.Get(handle, AttributeName);
        var records = new List<UploadInfo>();
        if (value is null)
        {
            return records;
        }

        var lines = Encoding.ASCII.GetString(value).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || lines[0] != "v1")
        {
            return records;
        }

        var oldest = _time.GetUtcNow().Subtract(_ttl).ToUnixTimeMilliseconds();
        foreach (var line in lines.Skip(1))
        {
            var parts = line.Split(' ');
            if (parts.Length == 4
                && ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var start)
                && ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var persisted)
                && long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var updated)
                && updated >= oldest)
            {
                records.Add(new UploadInfo { UploadId = parts[0], StartOffset = start, PersistedOffset = persisted, UpdatedUnixMs = updated });
            }
        }

        return records;
    }

    private static string Format(List<UploadInfo> records)
    {
        var text = new StringBuilder("v1\n");
        foreach (var r in records)
        {
            text.Append(CultureInfo.InvariantCulture, $"{r.UploadId} {r.StartOffset} {r.PersistedOffset} {r.UpdatedUnixMs}\n");
        }

        return text.ToString();
    }
}
