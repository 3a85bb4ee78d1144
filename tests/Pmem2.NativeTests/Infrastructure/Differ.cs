using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>
/// Collects the comparison of native and ours over many cases, and asserts once at the end with the
/// full list of mismatches (so one run shows every difference, not only the first).
/// </summary>
internal sealed class Differ
{
    private const int MaxListed = 60;

    private readonly List<string> _mismatches = [];
    private readonly SortedDictionary<string, int> _outcomes = new(StringComparer.Ordinal);

    public Differ(string name) => Name = name;

    public string Name { get; }

    public int Count { get; private set; }

    public int MessagesCompared { get; private set; }

    public int MessagesNotSetByNative { get; private set; }

    public IReadOnlyList<string> Mismatches => _mismatches;

    /// <summary>Compares codes; on double success size, granularity and alignment; on double failure the messages.</summary>
    public void Compare(object @case, Outcome native, Outcome ours, bool compareMessages = true, bool countsAsCombination = true)
    {
        if (countsAsCombination)
        {
            Count++;
            var key = native.Code == 0 ? (native.Granularity < 0 ? "OK" : $"OK {Raw.Granularity(native.Granularity)}") : Outcome.CodeName(native.Code);
            _outcomes[key] = _outcomes.TryGetValue(key, out var n) ? n + 1 : 1;
        }

        if (ours.Unexpected is not null || native.Code != ours.Code)
        {
            _mismatches.Add($"{@case}: native {native} | ours {ours}");
            return;
        }

        if (native.Code == 0)
        {
            if (native.Size != ours.Size || native.Granularity != ours.Granularity || native.Aligned2MiB != ours.Aligned2MiB)
            {
                _mismatches.Add($"{@case}: native {native} | ours {ours}");
            }

            return;
        }

        if (!compareMessages)
        {
            return;
        }

        if (native.Message is null)
        {
            MessagesNotSetByNative++;
            return;
        }

        MessagesCompared++;
        if (!string.Equals(NormalizePointers(native.Message), NormalizePointers(ours.Message), StringComparison.Ordinal))
        {
            _mismatches.Add($"{@case}: message differs for {Outcome.CodeName(native.Code)}: native \"{native.Message}\" | ours \"{ours.Message}\"");
        }
    }

    public void Fail(string description) => _mismatches.Add(description);

    /// <summary>
    /// Hexadecimal pointers ("0x7f..") in messages are replaced by "0x?": two libraries (and two maps or
    /// reservations) never print the same addresses, and native often prints the address of its
    /// internal structure where ours prints the mapping's.
    /// </summary>
    public static string? NormalizePointers(string? message) =>
        message is null ? null : System.Text.RegularExpressions.Regex.Replace(message, "0x[0-9a-fA-F]+", "0x?");

    /// <summary>Prints the summary, then asserts the case count and that nothing differed.</summary>
    public void AssertClean(ITestOutputHelper output, int minimumCases)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{Name}: {Count} combinations checked, {_mismatches.Count} mismatches; ");
        sb.Append(CultureInfo.InvariantCulture, $"error messages compared: {MessagesCompared} (native set none: {MessagesNotSetByNative})");
        output.WriteLine(sb.ToString());
        output.WriteLine("native outcomes: " + string.Join(", ", _outcomes.Select(kv => $"{kv.Key} x{kv.Value}")));
        foreach (var m in _mismatches.Take(MaxListed))
        {
            output.WriteLine("MISMATCH " + m);
        }

        Assert.True(Count >= minimumCases, $"{Name}: only {Count} combinations checked, expected at least {minimumCases}");
        if (_mismatches.Count > 0)
        {
            var msg = new StringBuilder();
            msg.AppendLine(CultureInfo.InvariantCulture, $"{Name}: {_mismatches.Count} mismatches between native libpmem2 and ours ({Count} combinations checked):");
            foreach (var m in _mismatches.Take(MaxListed))
            {
                msg.AppendLine("  " + m);
            }

            if (_mismatches.Count > MaxListed)
            {
                msg.AppendLine(CultureInfo.InvariantCulture, $"  ... and {_mismatches.Count - MaxListed} more");
            }

            Assert.Fail(msg.ToString());
        }
    }
}
