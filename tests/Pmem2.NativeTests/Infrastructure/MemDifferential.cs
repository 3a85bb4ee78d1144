using System.Globalization;
using Pmem2.Oracle;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>The outcome of one mem differential run.</summary>
internal sealed class MemResult
{
    /// <summary>Differences between ours and native / the model (bugs in ours).</summary>
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
/// Runs the mem cases through native libpmem2 on one file and through ours on another file with the
/// same initial contents (and through a byte-array model), comparing the touched windows after every
/// case and both whole files (read back with pread) at the end of each granularity.
/// </summary>
internal static class MemDifferential
{
    private const int MaxOursExceptionsPerMode = 10;

    public static MemResult Run(string directory, bool portedOnly, IReadOnlyList<MemMode> modes)
    {
        var result = new MemResult { OursEngine = Pmem2Platform.CopyEngine };
        var cases = MemCases.All(portedOnly).ToList();
        var initial = MemCases.Pattern(MemCases.FileSize, 20261126);
        foreach (var mode in modes)
        {
            result.Modes.Add(mode.Name);
            var nativePath = Path.Combine(directory, $"mem-native-{Guid.NewGuid():N}");
            var oursPath = Path.Combine(directory, $"mem-ours-{Guid.NewGuid():N}");
            try
            {
                File.WriteAllBytes(nativePath, initial);
                File.WriteAllBytes(oursPath, initial);
                byte[] model;
                using (ForceGranularity.Set(mode.Force))
                {
                    model = RunMode(mode, nativePath, oursPath, cases, (byte[])initial.Clone(), result);
                }

                if (model.Length == 0)
                {
                    continue;
                }

                var nativeFile = File.ReadAllBytes(nativePath);
                var oursFile = File.ReadAllBytes(oursPath);
                result.FileBytesCompared += nativeFile.Length;
                if (FirstDifference(nativeFile, model) is { } nd)
                {
                    result.OracleDisagreements.Add($"[{mode.Name}] native file differs from the model: {Describe(nativeFile, model, nd, "native", "model")}");
                }

                if (oursFile.Length != nativeFile.Length)
                {
                    result.Mismatches.Add($"[{mode.Name}] file length: native {nativeFile.Length}, ours {oursFile.Length}");
                }
                else if (FirstDifference(oursFile, nativeFile) is { } od)
                {
                    result.Mismatches.Add($"[{mode.Name}] files differ after all cases (read back with pread): {Describe(oursFile, nativeFile, od, "ours", "native")}");
                }
            }
            finally
            {
                File.Delete(nativePath);
                File.Delete(oursPath);
            }
        }

        return result;
    }

    private static byte[] RunMode(MemMode mode, string nativePath, string oursPath, IReadOnlyList<MemCase> cases, byte[] initial, MemResult result)
    {
        using var nativeHandle = File.OpenHandle(nativePath, FileMode.Open, FileAccess.ReadWrite);
        using var oursHandle = File.OpenHandle(oursPath, FileMode.Open, FileAccess.ReadWrite);
        var rc = NativeMap.TryCreate((int)nativeHandle.DangerousGetHandle(), mode.Requested, 0, 0, Raw.Shared, Raw.RW, out var nativeMap);
        if (rc != 0)
        {
            result.OracleDisagreements.Add($"[{mode.Name}] native pmem2_map_new failed: {Outcome.CodeName(rc)} {NativePmem2.ErrorMessage()}");
            return [];
        }

        using (nativeMap)
        {
            if (nativeMap!.Granularity != mode.Expected)
            {
                result.OracleDisagreements.Add($"[{mode.Name}] native granularity is {Raw.Granularity(nativeMap.Granularity)}");
            }

            Pmem2Source? source = null;
            Pmem2Map? map = null;
            try
            {
                source = Pmem2Source.FromHandle(oursHandle);
                map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = (Pmem2Granularity)mode.Requested }, source);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Still run native against the model, so that the cases themselves stay verified.
                result.Mismatches.Add($"[{mode.Name}] ours could not map the file: {e.GetType().Name}: {e.Message}");
                map = null;
            }

            try
            {
                if (map is not null && (int)map.StoreGranularity != nativeMap.Granularity)
                {
                    result.Mismatches.Add($"[{mode.Name}] effective granularity: native {Raw.Granularity(nativeMap.Granularity)}, ours {map.StoreGranularity}");
                }

                var errors = new List<string>();
                var modelSide = new ModelSide(initial);
                var nativeSide = new NativeSideMem(nativeMap, errors);
                var oursSide = map is null ? null : new OursSideMem(map);
                RunCases(mode, cases, modelSide, nativeSide, oursSide, errors, result);
                nativeSide.Persist(0, MemCases.FileSize);
                nativeSide.Drain();
                oursSide?.Persist(0, MemCases.FileSize);
                oursSide?.Drain();
                return modelSide.Bytes;
            }
            finally
            {
                map?.Dispose();
                try
                {
                    source?.Dispose();
                }
                catch (NotImplementedException)
                {
                }
            }
        }
    }

    internal static void RunCases(MemMode mode, IEnumerable<MemCase> cases, ModelSide model, NativeSideMem native, IMemSide? ours, List<string> nativeErrors, MemResult result)
    {
        var bufModel = new byte[64 << 10];
        var bufNative = new byte[64 << 10];
        var bufOurs = new byte[64 << 10];
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

                    if (ours is null)
                    {
                        continue;
                    }

                    ours.Read(check.Off, bufOurs, len);

                    if (FirstDifference(bufOurs.AsSpan(0, len), bufNative.AsSpan(0, len)) is { } od)
                    {
                        result.Mismatches.Add($"[{mode.Name}] engine {result.OursEngine}: {c.Name}: ours differs from native at file offset {check.Off + (ulong)od}: {Describe(bufOurs.AsSpan(0, len), bufNative.AsSpan(0, len), od, "ours", "native")}");
                        // Resynchronise ours with native so that one bug does not cascade into every later case.
                        ours.Write(check.Off, bufNative.AsSpan(0, len).ToArray());
                    }

                    continue;
                }

                result.Operations++;
                op.Apply(model);
                op.Apply(native);
                if (ours is null)
                {
                    continue;
                }

                try
                {
                    op.Apply(ours);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    result.Mismatches.Add($"[{mode.Name}] {c.Name}: ours threw at {MemCases.Describe(op)}: {e.GetType().Name}: {e.Message}");
                    if (++oursExceptions >= MaxOursExceptionsPerMode)
                    {
                        result.Mismatches.Add($"[{mode.Name}] stopped after {oursExceptions} exceptions from ours");
                        return;
                    }
                }
            }

            if (nativeErrors.Count > 0)
            {
                result.OracleDisagreements.AddRange(nativeErrors.Select(e => $"[{mode.Name}] {c.Name}: {e}"));
                nativeErrors.Clear();
            }
        }
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
