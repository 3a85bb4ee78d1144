using System.CommandLine;
using System.Globalization;
using System.Text;
using PmemService.Client;
using PmemService.Contracts.V1;
using RegionInfo = PmemService.Contracts.V1.RegionInfo;

namespace PmemCtl;

internal sealed partial class CommandTree
{
    private Command BuildRegionsCommand()
    {
        var regions = new Command("regions", "List and inspect regions");

        var pageSize = new Option<int>("--page-size") { Description = "Regions fetched per ListRegions page (0 = server default)" };
        var ls = new Command("ls", "List every region of the pool") { pageSize };
        SetHandler(ls, async (ctx, pr) =>
        {
            var size = pr.GetValue(pageSize);
            if (size is < 0 or > 1000)
            {
                throw new UsageException("--page-size must be between 0 and 1000");
            }

            var list = new List<RegionInfo>();
            await foreach (var region in ctx.Client.ListRegionsAsync(size, ctx.CancellationToken).ConfigureAwait(false))
            {
                list.Add(region);
            }

            if (ctx.Json)
            {
                ctx.WriteJson(list.Select(r => CliContext.RegionJson(r)));
                return ExitCodes.Ok;
            }

            if (list.Count == 0)
            {
                ctx.WriteLine("No regions.");
                return ExitCodes.Ok;
            }

            var rows = new List<string[]> { new[] { "NAME", "SIZE", "BYTES", "MAPPED", "REFS", "GRANULARITY" } };
            rows.AddRange(list.Select(r => new[]
            {
                r.Name,
                Sizes.Format((long)r.Size),
                r.Size.ToString(CultureInfo.InvariantCulture),
                r.Mapped ? "yes" : "no",
                r.MapReferences.ToString(CultureInfo.InvariantCulture),
                r.Mapped ? CliContext.GranularityName(r.EffectiveGranularity) : "-",
            }));
            WriteColumns(ctx.Out, rows);
            return ExitCodes.Ok;
        });

        var statName = new Argument<string>("NAME") { Description = "Region name" };
        var stat = new Command("stat", "Show one region") { statName };
        SetHandler(stat, async (ctx, pr) =>
        {
            var region = await ctx.Client.GetRegionAsync(pr.GetRequiredValue(statName), ctx.CancellationToken).ConfigureAwait(false);
            WriteRegion(ctx, region, null);
            return ExitCodes.Ok;
        });

        regions.Add(ls);
        regions.Add(stat);
        return regions;
    }

    private Command BuildMapCommand()
    {
        var name = new Argument<string>("NAME") { Description = "Region name ([A-Za-z0-9._-], up to 128 characters)" };
        var size = new Option<string?>("--size", "-s") { Description = "Region size, e.g. 64MiB (required with --create for a new region)" };
        var granularity = new Option<string?>("--granularity", "-g")
        {
            Description = "Coarsest store granularity tolerated: byte, cache-line or page [default: page]",
        };
        var create = new Option<bool>("--create", "-c") { Description = "Create the region if it does not exist" };
        var ifNotMapped = new Option<bool>("--if-not-mapped")
        {
            Description = "Take a reference only when the region has none yet, so running the command again (a restarted init container, a retried script) does not pile up references",
        };
        var map = new Command("map", "Open (or create) a region and map it; takes one reference, which stays until 'pmemctl unmap' (not when pmemctl exits)")
        {
            name, size, granularity, create, ifNotMapped,
        };
        SetHandler(map, async (ctx, pr) =>
        {
            var regionName = pr.GetRequiredValue(name);
            var bytes = pr.GetValue(size) is { } s ? Sizes.Parse(s) : 0;
            var g = CliContext.ParseGranularity(pr.GetValue(granularity));
            if (pr.GetValue(ifNotMapped))
            {
                try
                {
                    var existing = await ctx.Client.GetRegionAsync(regionName, ctx.CancellationToken).ConfigureAwait(false);
                    if (existing.Mapped)
                    {
                        if (bytes != 0 && (long)existing.Size != bytes)
                        {
                            throw new PmemException(PmemErrorKind.FailedPrecondition, "REGION_SIZE_MISMATCH",
                                PmemCtlApp.Invariant($"region '{regionName}' has {existing.Size} bytes, not {bytes}"));
                        }

                        WriteRegion(ctx, existing, "already mapped (no reference added)");
                        return ExitCodes.Ok;
                    }
                }
                catch (PmemException e) when (e.Kind == PmemErrorKind.RegionNotFound && pr.GetValue(create))
                {
                    // Created below.
                }
            }

            var region = await ctx.Client.MapRegionAsync(regionName, bytes, g, pr.GetValue(create), ctx.CancellationToken)
                .ConfigureAwait(false);
            WriteRegion(ctx, region, region.Created ? "created and mapped" : "mapped");
            return ExitCodes.Ok;
        });
        return map;
    }

    private Command BuildCreateCommand()
    {
        var name = new Argument<string>("NAME") { Description = "Region name ([A-Za-z0-9._-], up to 128 characters)" };
        var size = new Option<string>("--size", "-s") { Description = "Region size, e.g. 64MiB", Required = true };
        var create = new Command("create", "Create a region if it does not exist (idempotent; an existing region of the same size is fine). Leaves the references as they were: run 'pmemctl map' to use it")
        {
            name, size,
        };
        SetHandler(create, async (ctx, pr) =>
        {
            var regionName = pr.GetRequiredValue(name);
            var bytes = Sizes.Parse(pr.GetRequiredValue(size));
            // MapRegion is the only call that creates; the reference it takes is dropped again at once.
            var region = await ctx.Client.MapRegionAsync(regionName, bytes, Granularity.Unspecified, createIfMissing: true, ctx.CancellationToken)
                .ConfigureAwait(false);
            await ctx.Client.UnmapRegionAsync(regionName, CancellationToken.None).ConfigureAwait(false);
            var info = await ctx.Client.GetRegionAsync(regionName, ctx.CancellationToken).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(CliContext.RegionJson(info, created: region.Created));
            }
            else
            {
                ctx.WriteLine(region.Created ? $"created {regionName}" : $"{regionName} exists");
                WriteRegion(ctx, info, null);
            }

            return ExitCodes.Ok;
        });
        return create;
    }

    private Command BuildUnmapCommand()
    {
        var name = new Argument<string>("NAME") { Description = "Region name" };
        var unmap = new Command("unmap", "Drop one mapping reference; the last one persists and unmaps the region") { name };
        SetHandler(unmap, async (ctx, pr) =>
        {
            var region = pr.GetRequiredValue(name);
            var remaining = await ctx.Client.UnmapRegionAsync(region, ctx.CancellationToken).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { name = region, remainingReferences = remaining });
            }
            else
            {
                ctx.WriteLine(PmemCtlApp.Invariant($"unmapped {region}: {remaining} reference(s) remain{(remaining == 0 ? " (persisted and unmapped)" : string.Empty)}"));
            }

            return ExitCodes.Ok;
        });
        return unmap;
    }

    private Command BuildRmCommand()
    {
        var name = new Argument<string>("NAME") { Description = "Region name" };
        var force = new Option<bool>("--force", "-f") { Description = "Delete even while mapped (drops every reference)" };
        var rm = new Command("rm", "Delete a region file") { name, force };
        SetHandler(rm, async (ctx, pr) =>
        {
            var region = pr.GetRequiredValue(name);
            await ctx.Client.DeleteRegionAsync(region, pr.GetValue(force), ctx.CancellationToken).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { name = region, deleted = true });
            }
            else
            {
                ctx.WriteLine($"deleted {region}");
            }

            return ExitCodes.Ok;
        });
        return rm;
    }

    private Command BuildHealthCommand()
    {
        var service = new Option<string>("--service")
        {
            Description = "Health service name: empty for liveness, 'readiness' for readiness",
            DefaultValueFactory = _ => string.Empty,
        };
        var health = new Command("health", "Ask the server's grpc.health.v1 service; exit 0 when SERVING") { service };
        SetHandler(health, async (ctx, pr) =>
        {
            var name = pr.GetValue(service) ?? string.Empty;
            var status = await ctx.Client.CheckHealthAsync(name, ctx.CancellationToken).ConfigureAwait(false);
            var text = status switch
            {
                PmemHealthStatus.Serving => "SERVING",
                PmemHealthStatus.NotServing => "NOT_SERVING",
                PmemHealthStatus.ServiceUnknown => "SERVICE_UNKNOWN",
                _ => "UNKNOWN",
            };
            var label = name.Length == 0 ? "liveness" : name;
            if (ctx.Json)
            {
                ctx.WriteJson(new { address = ctx.Client.Endpoint.ToString(), service = name, status = text });
            }
            else if (status == PmemHealthStatus.Serving)
            {
                ctx.WriteLine($"{text} ({label} at {ctx.Client.Endpoint})");
            }

            if (status != PmemHealthStatus.Serving)
            {
                await ctx.Err.WriteLineAsync(status == PmemHealthStatus.ServiceUnknown
                    ? $"error: SERVICE_UNKNOWN: {ctx.Client.Endpoint} has no health service '{name}'"
                    : $"error: {text}: {label} at {ctx.Client.Endpoint} is {text}").ConfigureAwait(false);
            }

            return status switch
            {
                PmemHealthStatus.Serving => ExitCodes.Ok,
                PmemHealthStatus.ServiceUnknown => ExitCodes.NotFound,
                _ => ExitCodes.Unavailable,
            };
        });
        return health;
    }

    private static void WriteRegion(CliContext ctx, RegionInfo region, string? verb)
    {
        if (ctx.Json)
        {
            ctx.WriteJson(CliContext.RegionJson(region));
            return;
        }

        if (verb is not null)
        {
            ctx.WriteLine($"{verb} {region.Name}");
        }

        var rows = new List<string[]>
        {
            new[] { "name:", region.Name },
            new[] { "size:", PmemCtlApp.Invariant($"{region.Size} ({Sizes.Format((long)region.Size)})") },
            new[] { "mapped:", region.Mapped ? "yes" : "no" },
            new[] { "references:", region.MapReferences.ToString(CultureInfo.InvariantCulture) },
        };
        if (region.Mapped)
        {
            rows.Add(["granularity:", PmemCtlApp.Invariant($"{CliContext.GranularityName(region.EffectiveGranularity)} (requested {CliContext.GranularityName(region.RequestedGranularity)})")]);
            rows.Add(["map_sync:", region.MapSync ? "yes" : "no"]);
        }

        rows.Add(["content:", region.HasContentLength
            ? PmemCtlApp.Invariant($"{region.ContentLength} bytes ({Sizes.Format((long)region.ContentLength)}), crc64 {region.ContentCrc64}")
            : "not recorded (get returns the whole region)"]);
        if (region.Owner.Length > 0 || region.CallerRights is not null)
        {
            rows.Add(["owner:", region.Owner.Length == 0 ? "none" : region.Owner]);
            rows.Add(["your rights:", PmemClient.FormatRights(region.CallerRights)]);
        }

        WriteColumns(ctx.Out, rows);
    }

    /// <summary>Writes rows as left-aligned columns separated by two spaces (kubectl style).</summary>
    private static void WriteColumns(TextWriter writer, List<string[]> rows)
    {
        var widths = new int[rows.Max(r => r.Length)];
        foreach (var row in rows)
        {
            for (var i = 0; i < row.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        var line = new StringBuilder();
        foreach (var row in rows)
        {
            line.Clear();
            for (var i = 0; i < row.Length; i++)
            {
                line.Append(i == row.Length - 1 ? row[i] : row[i].PadRight(widths[i] + 2));
            }

            writer.WriteLine(line.ToString().TrimEnd());
        }
    }
}
