using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PmemService.Server.Internal;

/// <summary>Rights on a region. Admin implies write and read; write implies read.</summary>
[Flags]
internal enum AccessRights
{
    None = 0,
    Read = 1,
    Write = 2,
    Admin = 4,
}

/// <summary>One access-list entry: a subject ("uid:N", "gid:N" or "sub:TEXT") and its rights.</summary>
internal readonly record struct RegionAclEntry(string Subject, AccessRights Rights);

/// <summary>
/// A region's owner and access list, stored durably as the extended attribute <c>user.pmem.acl</c> of the
/// region file (set on the temporary file before the durable create renames it into place, so a region
/// never exists without it; changed with fsetxattr + fsync). Value: UTF-8 JSON
/// <c>{"v":1,"owner":"uid:1000","entries":[{"subject":"gid:2000","rights":"r"}]}</c>, rights a subset of "rwa".
/// </summary>
internal sealed record RegionAcl(string Owner, IReadOnlyList<RegionAclEntry> Entries)
{
    public const string AttributeName = "user.pmem.acl";

    /// <summary>Most entries an access list may have.</summary>
    public const int MaxEntries = 64;

    /// <summary>Longest subject.</summary>
    public const int MaxSubjectLength = 256;

    /// <summary>Rights with their implications (admin ⇒ write ⇒ read).</summary>
    public static AccessRights Normalize(AccessRights rights)
    {
        if (rights.HasFlag(AccessRights.Admin))
        {
            rights |= AccessRights.Write;
        }

        if (rights.HasFlag(AccessRights.Write))
        {
            rights |= AccessRights.Read;
        }

        return rights;
    }

    /// <summary>"uid:N", "gid:N" (N a 32-bit number) or "sub:TEXT" (1 to 252 characters, no control characters).</summary>
    public static bool IsPrincipal(string? subject)
    {
        if (string.IsNullOrEmpty(subject) || subject.Length > MaxSubjectLength)
        {
            return false;
        }

        if (subject.StartsWith("uid:", StringComparison.Ordinal) || subject.StartsWith("gid:", StringComparison.Ordinal))
        {
            return uint.TryParse(subject.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out _);
        }

        return subject.StartsWith("sub:", StringComparison.Ordinal) && subject.Length > 4 && !subject.Any(char.IsControl);
    }

    public static string RightsText(AccessRights rights)
    {
        rights = Normalize(rights);
        return (rights.HasFlag(AccessRights.Read) ? "r" : string.Empty)
            + (rights.HasFlag(AccessRights.Write) ? "w" : string.Empty)
            + (rights.HasFlag(AccessRights.Admin) ? "a" : string.Empty);
    }

    public static bool TryParseRights(string? text, out AccessRights rights)
    {
        rights = AccessRights.None;
        foreach (var c in text ?? string.Empty)
        {
            rights |= c switch
            {
                'r' => AccessRights.Read,
                'w' => AccessRights.Write,
                'a' => AccessRights.Admin,
                _ => (AccessRights)(-1),
            };
            if ((int)rights < 0)
            {
                return false;
            }
        }

        rights = Normalize(rights);
        return rights != AccessRights.None;
    }

    /// <summary>The rights <paramref name="caller"/> has: admin for the owner, else the union of its uid/gid/sub entries.</summary>
    public AccessRights RightsOf(RegionCaller caller)
    {
        if (string.Equals(Owner, caller.Principal, StringComparison.Ordinal))
        {
            return Normalize(AccessRights.Admin);
        }

        var rights = AccessRights.None;
        foreach (var entry in Entries)
        {
            if (caller.Matches(entry.Subject))
            {
                rights |= entry.Rights;
            }
        }

        return Normalize(rights);
    }

    public byte[] Serialize()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteNumber("v", 1);
            json.WriteString("owner", Owner);
            json.WriteStartArray("entries");
            foreach (var entry in Entries)
            {
                json.WriteStartObject();
                json.WriteString("subject", entry.Subject);
                json.WriteString("rights", RightsText(entry.Rights));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return stream.ToArray();
    }

    /// <summary>Parses a stored value; null when it is not a version-1 access list (treated like a region without one).</summary>
    public static RegionAcl? Parse(ReadOnlySpan<byte> value)
    {
        try
        {
            using var document = JsonDocument.Parse(Encoding.UTF8.GetString(value));
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("v", out var v) || v.ValueKind != JsonValueKind.Number || v.GetInt32() != 1
                || !root.TryGetProperty("owner", out var owner) || owner.ValueKind != JsonValueKind.String || !IsPrincipal(owner.GetString()))
            {
                return null;
            }

            var entries = new List<RegionAclEntry>();
            if (root.TryGetProperty("entries", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in list.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("subject", out var subject) && subject.ValueKind == JsonValueKind.String
                        && IsPrincipal(subject.GetString()) && item.TryGetProperty("rights", out var r) && r.ValueKind == JsonValueKind.String
                        && TryParseRights(r.GetString(), out var rights))
                    {
                        entries.Add(new RegionAclEntry(subject.GetString()!, rights));
                    }
                }
            }

            return new RegionAcl(owner.GetString()!, entries);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or ArgumentException)
        {
            return null;
        }
    }
}
