using System.CommandLine;
using PmemService.Client;
using PmemService.Contracts.V1;

namespace PmemCtl;

/// <summary>pmemctl access get|set|grant|revoke: a region's owner and access list (per-region access).</summary>
internal sealed partial class CommandTree
{
    private Command BuildAccessCommand()
    {
        var access = new Command("access", "Show or change who may use a region: its owner and access list (needs the admin right on it)");

        var getName = new Argument<string>("NAME") { Description = "Region name" };
        var get = new Command("get", "Show the region's owner and access list") { getName };
        SetHandler(get, async (ctx, pr) =>
        {
            var name = pr.GetRequiredValue(getName);
            WriteAccess(ctx, name, await ctx.Client.GetRegionAccessAsync(name, ctx.CancellationToken).ConfigureAwait(false));
            return ExitCodes.Ok;
        });

        var setName = new Argument<string>("NAME") { Description = "Region name" };
        var setEntries = new Argument<string[]>("ENTRY") { Description = "SUBJECT=RIGHTS: uid:N, gid:N or sub:TEXT, and a subset of rwa (read, write, admin)", Arity = ArgumentArity.ZeroOrMore };
        var owner = new Option<string?>("--owner") { Description = "Give the region to this identity (uid:N or sub:TEXT); only its owner or a superuser may" };
        var clear = new Option<bool>("--clear") { Description = "Allow an empty access list (remove every entry)" };
        var set = new Command("set", "Replace the region's access list (and with --owner, its owner)") { setName, setEntries, owner, clear };
        SetHandler(set, async (ctx, pr) =>
        {
            var name = pr.GetRequiredValue(setName);
            var entries = ParseEntries(pr.GetValue(setEntries));
            var newOwner = pr.GetValue(owner);
            if (entries.Count == 0 && newOwner is null && !pr.GetValue(clear))
            {
                throw new UsageException("give ENTRY arguments, --owner, or --clear to remove every entry");
            }

            if (entries.Count > 0 && pr.GetValue(clear))
            {
                throw new UsageException("--clear takes no ENTRY arguments");
            }

            IEnumerable<RegionAccessEntry> list = entries;
            if (entries.Count == 0 && !pr.GetValue(clear))
            {
                // --owner alone keeps the entries.
                list = (await ctx.Client.GetRegionAccessAsync(name, ctx.CancellationToken).ConfigureAwait(false)).Entries;
            }

            WriteAccess(ctx, name, await ctx.Client.SetRegionAccessAsync(name, list, newOwner, ctx.CancellationToken).ConfigureAwait(false));
            return ExitCodes.Ok;
        });

        var grantName = new Argument<string>("NAME") { Description = "Region name" };
        var grantEntries = new Argument<string[]>("ENTRY") { Description = "SUBJECT=RIGHTS (replaces that subject's entry)", Arity = ArgumentArity.OneOrMore };
        var grant = new Command("grant", "Add or replace entries (read, change, write back: not atomic against a concurrent change)") { grantName, grantEntries };
        SetHandler(grant, async (ctx, pr) =>
        {
            var name = pr.GetRequiredValue(grantName);
            var added = ParseEntries(pr.GetValue(grantEntries));
            var current = await ctx.Client.GetRegionAccessAsync(name, ctx.CancellationToken).ConfigureAwait(false);
            var list = current.Entries.Where(e => !added.Any(a => a.Subject == e.Subject)).Concat(added).ToList();
            WriteAccess(ctx, name, await ctx.Client.SetRegionAccessAsync(name, list, null, ctx.CancellationToken).ConfigureAwait(false));
            return ExitCodes.Ok;
        });

        var revokeName = new Argument<string>("NAME") { Description = "Region name" };
        var revokeSubjects = new Argument<string[]>("SUBJECT") { Description = "uid:N, gid:N or sub:TEXT whose entry is removed", Arity = ArgumentArity.OneOrMore };
        var revoke = new Command("revoke", "Remove the entries of subjects (not atomic against a concurrent change)") { revokeName, revokeSubjects };
        SetHandler(revoke, async (ctx, pr) =>
        {
            var name = pr.GetRequiredValue(revokeName);
            var subjects = pr.GetValue(revokeSubjects) ?? [];
            var current = await ctx.Client.GetRegionAccessAsync(name, ctx.CancellationToken).ConfigureAwait(false);
            var list = current.Entries.Where(e => !subjects.Contains(e.Subject)).ToList();
            WriteAccess(ctx, name, await ctx.Client.SetRegionAccessAsync(name, list, null, ctx.CancellationToken).ConfigureAwait(false));
            return ExitCodes.Ok;
        });

        access.Add(get);
        access.Add(set);
        access.Add(grant);
        access.Add(revoke);
        return access;
    }

    private static List<RegionAccessEntry> ParseEntries(string[]? texts)
    {
        var entries = new List<RegionAccessEntry>();
        foreach (var text in texts ?? [])
        {
            try
            {
                entries.Add(PmemClient.ParseAccessEntry(text));
            }
            catch (FormatException e)
            {
                throw new UsageException(e.Message);
            }
        }

        return entries;
    }

    private static void WriteAccess(CliContext ctx, string name, RegionAccess access)
    {
        if (ctx.Json)
        {
            ctx.WriteJson(new
            {
                name,
                owner = access.Owner.Length == 0 ? null : access.Owner,
                entries = access.Entries.Select(e => new
                {
                    subject = e.Subject,
                    rights = PmemClient.FormatRights(e.Rights),
                    read = e.Rights?.Read ?? false,
                    write = e.Rights?.Write ?? false,
                    admin = e.Rights?.Admin ?? false,
                }),
            });
            return;
        }

        var rows = new List<string[]>
        {
            new[] { "name:", name },
            new[] { "owner:", access.Owner.Length == 0 ? "none (created before per-region access; superusers only)" : access.Owner },
        };
        WriteColumns(ctx.Out, rows);
        if (access.Entries.Count == 0)
        {
            ctx.WriteLine("No access-list entries (only the owner and superusers).");
            return;
        }

        var table = new List<string[]> { new[] { "SUBJECT", "RIGHTS" } };
        table.AddRange(access.Entries.Select(e => new[] { e.Subject, PmemClient.FormatRights(e.Rights) }));
        WriteColumns(ctx.Out, table);
    }
}
