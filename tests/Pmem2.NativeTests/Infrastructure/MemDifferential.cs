using System.Globalization;
using Pmem2.Oracle;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>The outcome of one mem differential run.</summary>
internal sealed class MemResult
{
    /// <summary>Differences between ours and native (bugs in ours).</summary>
    public List<string> Mismatches { get; } = [];

    /// <summary>Differences between native and the model (a bug in the test, or in native libpmem2).</summary>
    public List<string> OracleDisagreements { get; } = [];

    public int Cases { get; set; }

    public int Operations { get; set; }

    public int Checks { get; set; }

    public long FileBytesCompared { get; set; }

    public string OursEngine { get; set; } = string.Empty;

    public List<string> Modes { get; } = [];
}

/// <summary>A granularity set-up of the mem differential: forced variable, requested and expected granularity.</summary>
internal sealed record MemMode(string Name, string? Force, int Requested, int Expected)
{
    public static readonly MemMode Page = new("PAGE", null, Raw.Page, Raw.Page);
    public static readonly MemMode CacheLine = new("CACHE_LINE (forced)", "CACHE_LINE", Raw.CacheLine, Raw.CacheLine);
    public static readonly MemMode Byte = new("BYTE (forced)", "BYTE", Raw.Byte, Raw.Byte);
    public static readonly MemMode[] All = [Page, CacheLine, Byte];
}

/// <summary>
/// Runs the mem cases through native libpmem2 on one file and through ours on two more files with the
/// same initial contents (ours' public Pmem2Map API on one, its internal Raw entry points on the other),
/// and through a byte-array model, comparing the touched windows after every case and the whole files
/// (read back with pread) at the end of each granularity.
/// </summary>
internal static class MemDifferential
{
    private const int MaxOursExceptionsPerMode = 10;

    public static MemResult Run(string directory, bool portedOnly, IReadOnlyList<MemMode> modes, bool includeRaw = true)
    {
        var result = new MemResult { OursEngine = Pmem2Platform.CopyEngine };
        var cases = MemCases.All(portedOnly).ToList();
        var initial = MemCases.Pattern(MemCases.FileSize, 20261126);
        foreach (var mode in modes)
        {
            result.Modes.Add(mode.Name);
            var nativePath = Path.Combine(directory, $"mem-native-{Guid.NewGuid():N}");
            var oursPaths = includeRaw
                ? new[] { Path.Combine(directory, $"mem-ours-{Guid.NewGuid():N}"), Path.Combine(directory, $"mem-ours-raw-{Guid.NewGuid():N}") }
                : [Path.Combine(directory, $"mem-ours-{Guid.NewGuid():N}")];
            try
            {
                foreach (var p in oursPaths.Prepend(nativePath))
                {
                    WriteDurably(p, initial);
                }

                byte[] model;
                using (ForceGranularity.Set(mode.Force))
                {
                    model = RunMode(mode, nativePath, oursPaths, cases, (byte[])initial.Clone(), result);
                }

                if (model.Length == 0)
                {
                    continue;
                }

                var nativeFile = File.ReadAllBytes(nativePath);
                result.FileBytesCompared += nativeFile.Length;
                if (FirstDifference(nativeFile, model) is { } nd)
                {
                    result.OracleDisagreements.Add($"[{mode.Name}] native file differs from the model: {Describe(nativeFile, model, nd, "native", "model")}");
                }

                for (var i = 0; i < oursPaths.Length; i++)
                {
                    var oursFile = File.ReadAllBytes(oursPaths[i]);
                    result.FileBytesCompared += oursFile.Length;
                    var name = i == 0 ? "ours" : "ours-raw";
                    if (oursFile.Length != nativeFile.Length)
                    {
                        result.Mismatches.Add($"[{mode.Name}] file length: native {nativeFile.Length}, {name} {oursFile.Length}");
                    }
                    else if (FirstDifference(oursFile, nativeFile) is { } od)
                    {
                        result.Mismatches.Add($"[{mode.Name}] {name} file differs from native after all cases (read back with pread): {Describe(oursFile, nativeFile, od, name, "native")}");
                    }
                }
            }
            finally
            {
                File.Delete(nativePath);
                foreach (var p in oursPaths)
                {
                    File.Delete(p);
                }
            }
        }

        return result;
    }

    private static byte[] RunMode(MemMode mode, string nativePath, string[] oursPaths, IReadOnlyList<MemCase> cases, byte[] initial, MemResult result)
    {
        using var nativeHandle = File.OpenHandle(nativePath, FileMode.Open, FileAccess.ReadWrite);
        var rc = NativeMap.TryCreate((int)nativeHandle.DangerousGetHandle(), mode.Requested, 0, 0, Raw.Shared, Raw.RW, out var nativeMap);
        if (rc != 0)
        {
            result.OracleDisagreements.Add($"[{mode.Name}] native pmem2_map_new failed: {Outcome.CodeName(rc)} {NativePmem2.ErrorMessage()}");
            return [];
        }

        var handles = new List<Microsoft.Win32.SafeHandles.SafeFileHandle>();
        var sources = new List<Pmem2Source>();
        var maps = new List<Pmem2Map>();
        using (nativeMap)
        {
            if (nativeMap!.Granularity != mode.Expected)
            {
                result.OracleDisagreements.Add($"[{mode.Name}] native granularity is {Raw.Granularity(nativeMap.Granularity)}");
            }

            try
            {
                foreach (var path in oursPaths)
                {
                    var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
                    handles.Add(handle);
                    var source = Pmem2Source.FromHandle(handle);
                    sources.Add(source);
                    maps.Add(Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = (Pmem2Granularity)mode.Requested }, source));
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Still run native against the model, so that the cases themselves stay verified.
                result.Mismatches.Add($"[{mode.Name}] ours could not map the file: {e.GetType().Name}: {e.Message}");
            }

            try
            {
                var errors = new List<string>();
                var oursSides = new List<IMemSide>();
                if (maps.Count == oursPaths.Length)
                {
                    foreach (var map in maps.Where(m => (int)m.StoreGranularity != nativeMap.Granularity))
                    {
                        result.Mismatches.Add($"[{mode.Name}] effective granularity: native {Raw.Granularity(nativeMap.Granularity)}, ours {map.StoreGranularity}");
                    }

                    oursSides.Add(new OursSideMem(maps[0]));
                    if (maps.Count > 1)
                    {
                        oursSides.Add(new OursRawSideMem(maps[1], errors));
                    }
                }

                var modelSide = new ModelSide(initial);
                var nativeSide = new NativeSideMem(nativeMap, errors);
                RunCases(mode, cases, modelSide, nativeSide, oursSides, errors, result);
                nativeSide.Persist(0, MemCases.FileSize);
                nativeSide.Drain();
                foreach (var side in oursSides)
                {
                    side.Persist(0, MemCases.FileSize);
                    side.Drain();
                }

                return modelSide.Bytes;
            }
            finally
            {
                maps.ForEach(m => m.Dispose());
                sources.ForEach(s => s.Dispose());
                handles.ForEach(h => h.Dispose());
            }
        }
    }

    /// <summary>Applies every case to the model, native and each of ours in lockstep and compares at each CheckOp.</summary>
    internal static void RunCases(MemMode mode, IEnumerable<MemCase> cases, ModelSide model, NativeSideMem native, IReadOnlyList<IMemSide> ours, List<string> errors, MemResult result)
    {
        var bufModel = new byte[128 << 10];
        var bufNative = new byte[128 << 10];
        var bufOurs = new byte[128 << 10];
        var oursExceptions = 0;
        foreach (var c in cases)
        {
            result.Cases++;
            foreach (var op in c.Ops)
            {
                if (op is CheckOp check)
                {
                    result.Checks++;
                    var len = (int)check.Len;
                    model.Read(check.Off, bufModel, len);
                    native.Read(check.Off, bufNative, len);
                    if (FirstDifference(bufNative.AsSpan(0, len), bufModel.AsSpan(0, len)) is { } nd)
                    {
                        result.OracleDisagreements.Add($"[{mode.Name}] {c.Name}: native differs from the model at file offset {check.Off + (ulong)nd}: {Describe(bufNative.AsSpan(0, len), bufModel.AsSpan(0, len), nd, "native", "model")}");
                    }

                    foreach (var side in ours)
                    {
                        side.Read(check.Off, bufOurs, len);
                        if (FirstDifference(bufOurs.AsSpan(0, len), bufNative.AsSpan(0, len)) is { } od)
                        {
                            result.Mismatches.Add($"[{mode.Name}] engine {result.OursEngine}: {c.Name}: {side.Name} differs from native at file offset {check.Off + (ulong)od}: {Describe(bufOurs.AsSpan(0, len), bufNative.AsSpan(0, len), od, side.Name, "native")}");
                            // Resynchronise with native so that one bug does not cascade into every later case.
                            side.Write(check.Off, bufNative.AsSpan(0, len).ToArray());
                        }
                    }

                    continue;
                }

                result.Operations++;
                op.Apply(model);
                op.Apply(native);
                foreach (var side in ours)
                {
                    try
                    {
                        op.Apply(side);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        result.Mismatches.Add($"[{mode.Name}] {c.Name}: {side.Name} threw at {MemCases.Describe(op)}: {e.GetType().Name}: {e.Message}");
                        if (++oursExceptions >= MaxOursExceptionsPerMode)
                        {
                            result.Mismatches.Add($"[{mode.Name}] stopped after {oursExceptions} exceptions from ours");
                            return;
                        }
                    }
                }
            }

            if (errors.Count > 0)
            {
                foreach (var e in errors)
                {
                    (e.StartsWith("native", StringComparison.Ordinal) ? result.OracleDisagreements : result.Mismatches).Add($"[{mode.Name}] {c.Name}: {e}");
                }

                errors.Clear();
            }
        }
    }

    /// <summary>Writes the initial contents and fsyncs them, so that the first msync of a case does not
    /// have to write back the whole file.</summary>
    private static void WriteDurably(string path, byte[] contents)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        fs.Write(contents);
        fs.Flush(flushToDisk: true);
    }

    private static int? FirstDifference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        var common = a.CommonPrefixLength(b);
        return common == a.Length && a.Length == b.Length ? null : common;
    }

    private static string Describe(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, int first, string aName, string bName)
    {
        var count = 0;
        var last = first;
        for (var i = first; i < Math.Min(a.Length, b.Length); i++)
        {
            if (a[i] != b[i])
            {
                count++;
                last = i;
            }
        }

        var end = Math.Min(first + 8, Math.Min(a.Length, b.Length));
        return string.Create(CultureInfo.InvariantCulture,
            $"{count} bytes differ in window offsets [{first}, {last}]; from {first}: {aName} {Convert.ToHexString(a[first..end])} {bName} {Convert.ToHexString(b[first..end])}");
    }
}
