using PmemService.Contracts.V1;

namespace PmemService.Client;

public sealed partial class PmemClient
{
    /// <summary>
    /// The region's owner and access list (per-region access; README "Per-region access"). Needs the admin
    /// right on the region (its owner has it). A caller with no right at all gets <see cref="PmemErrorKind.RegionNotFound"/>.
    /// </summary>
    public async Task<RegionAccess> GetRegionAccessAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var response = await UnaryAsync(_client.GetRegionAccessAsync, new GetRegionAccessRequest { Name = name }, cancellationToken).ConfigureAwait(false);
        return response.Access;
    }

    /// <summary>
    /// Replaces the region's access list with <paramref name="entries"/> and, when <paramref name="owner"/> is given,
    /// gives the region to that identity (only its current owner or a superuser may). Stored durably with the region
    /// file. Needs the admin right. Not retried automatically.
    /// </summary>
    /// <exception cref="PmemException">Reason <c>REGION_ACCESS_DENIED</c> without the admin right, <c>INVALID_ACCESS_ENTRY</c> for a malformed entry.</exception>
    public async Task<RegionAccess> SetRegionAccessAsync(string name, IEnumerable<RegionAccessEntry> entries, string? owner = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(entries);
        var request = new SetRegionAccessRequest { Name = name, Owner = owner ?? string.Empty };
        request.Entries.AddRange(entries);
        var response = await UnaryAsync(_client.SetRegionAccessAsync, request, cancellationToken).ConfigureAwait(false);
        return response.Access;
    }

    /// <summary>
    /// An access-list entry from its text form <c>SUBJECT=RIGHTS</c>: SUBJECT is <c>uid:N</c>, <c>gid:N</c> or
    /// <c>sub:TEXT</c>, RIGHTS a non-empty subset of <c>rwa</c> (read, write, admin; admin implies write, write implies read).
    /// </summary>
    /// <exception cref="FormatException">The text is not SUBJECT=RIGHTS.</exception>
    public static RegionAccessEntry ParseAccessEntry(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var split = text.LastIndexOf('=');
        if (split <= 0 || split == text.Length - 1)
        {
            throw new FormatException($"'{text}' is not SUBJECT=RIGHTS (for example uid:1000=rw, gid:2000=r, sub:backup=r).");
        }

        var subject = text[..split];
        if (!subject.StartsWith("uid:", StringComparison.Ordinal) && !subject.StartsWith("gid:", StringComparison.Ordinal) && !subject.StartsWith("sub:", StringComparison.Ordinal))
        {
            throw new FormatException($"subject '{subject}' must be uid:N, gid:N or sub:TEXT.");
        }

        var rights = new RegionRights();
        foreach (var c in text[(split + 1)..])
        {
            switch (c)
            {
                case 'r':
                    rights.Read = true;
                    break;
                case 'w':
                    rights.Read = rights.Write = true;
                    break;
                case 'a':
                    rights.Read = rights.Write = rights.Admin = true;
                    break;
                default:
                    throw new FormatException($"rights '{text[(split + 1)..]}' must be letters of rwa (read, write, admin).");
            }
        }

        return new RegionAccessEntry { Subject = subject, Rights = rights };
    }

    /// <summary>Rights as text: a subset of <c>rwa</c> ("-" for none).</summary>
    public static string FormatRights(RegionRights? rights)
    {
        var text = (rights?.Read == true ? "r" : string.Empty) + (rights?.Write == true ? "w" : string.Empty) + (rights?.Admin == true ? "a" : string.Empty);
        return text.Length == 0 ? "-" : text;
    }
}
