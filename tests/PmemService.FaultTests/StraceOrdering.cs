using System.Globalization;
using System.Text.RegularExpressions;

namespace PmemService.FaultTests;

/// <summary>
/// Reads an <c>strace -f -tt -xx -o FILE</c> trace of the service and answers: for an acknowledged write,
/// did an msync covering its bytes return 0 before the response carrying the acknowledgment was sent?
/// <para>
/// Order is the file's line order. Under ptrace a traced thread stops at each traced syscall's entry and
/// exit until strace has recorded it, so "msync's exit is printed before the send's entry" means the
/// msync had returned before the send ran, whichever threads they ran on. A complete line
/// <c>msync(...) = 0</c> is printed at exit (nothing else was printed between its entry and exit);
/// an interleaved one is split into <c>&lt;unfinished ...&gt;</c> (entry) and <c>&lt;... msync resumed&gt;</c>
/// (exit). A send is placed at its entry line (complete or unfinished), which carries its bytes.
/// </para>
/// </summary>
public sealed partial class StraceOrdering
{
    private readonly List<Msync> _msyncs = [];
    private readonly List<Send> _sends = [];

    private StraceOrdering()
    {
    }

    /// <summary>An msync that returned 0: [Address, Address+Length), completed at line <see cref="Line"/>.</summary>
    public sealed record Msync(int Line, ulong Address, ulong Length);

    /// <summary>A send-family syscall entry at line <see cref="Line"/> with the bytes it sent (as printed).</summary>
    public sealed record Send(int Line, string Syscall, byte[] Bytes);

    public IReadOnlyList<Msync> Msyncs => _msyncs;

    public IReadOnlyList<Send> Sends => _sends;

    [GeneratedRegex(@"^(?<pid>\d+)\s+\S+\s+(?<rest>.*)$")]
    private static partial Regex LinePrefix();

    [GeneratedRegex(@"^msync\(0x(?<addr>[0-9a-f]+), (?<len>\d+), [A-Z_|]+\)\s+= (?<ret>-?\d+)")]
    private static partial Regex CompleteMsync();

    [GeneratedRegex(@"^msync\(0x(?<addr>[0-9a-f]+), (?<len>\d+), [A-Z_|]+ <unfinished \.\.\.>")]
    private static partial Regex UnfinishedMsync();

    [GeneratedRegex(@"^<\.\.\. msync resumed>.*\)\s+= (?<ret>-?\d+)")]
    private static partial Regex ResumedMsync();

    [GeneratedRegex(@"^(?<name>sendmsg|sendto|write|writev)\(")]
    private static partial Regex SendStart();

    [GeneratedRegex(@"""((?:\\x[0-9a-f]{2})*)""")]
    private static partial Regex HexString();

    public static StraceOrdering Parse(string path)
    {
        var result = new StraceOrdering();
        var pendingMsync = new Dictionary<string, (ulong Addr, ulong Len)>();
        var lineNo = 0;
        foreach (var raw in File.ReadLines(path))
        {
            lineNo++;
            var m = LinePrefix().Match(raw);
            if (!m.Success)
            {
                continue;
            }

            var pid = m.Groups["pid"].Value;
            var rest = m.Groups["rest"].Value;
            if (CompleteMsync().Match(rest) is { Success: true } c)
            {
                if (c.Groups["ret"].Value == "0")
                {
                    result._msyncs.Add(new Msync(lineNo, Hex(c.Groups["addr"].Value), ulong.Parse(c.Groups["len"].Value, CultureInfo.InvariantCulture)));
                }
            }
            else if (UnfinishedMsync().Match(rest) is { Success: true } u)
            {
                pendingMsync[pid] = (Hex(u.Groups["addr"].Value), ulong.Parse(u.Groups["len"].Value, CultureInfo.InvariantCulture));
            }
            else if (ResumedMsync().Match(rest) is { Success: true } r)
            {
                if (pendingMsync.Remove(pid, out var p) && r.Groups["ret"].Value == "0")
                {
                    result._msyncs.Add(new Msync(lineNo, p.Addr, p.Len));
                }
            }
            else if (SendStart().Match(rest) is { Success: true } s)
            {
                var bytes = new List<byte>();
                foreach (Match h in HexString().Matches(rest))
                {
                    var text = h.Groups[1].Value;
                    for (var i = 0; i + 4 <= text.Length; i += 4)
                    {
                        bytes.Add(byte.Parse(text.AsSpan(i + 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    }
                }

                result._sends.Add(new Send(lineNo, s.Groups["name"].Value, [.. bytes]));
            }
        }

        return result;
    }

    private static ulong Hex(string s) => ulong.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>The first send at or after line <paramref name="fromLine"/> whose bytes contain <paramref name="pattern"/>.</summary>
    public Send? FindSend(byte[] pattern, int fromLine) =>
        _sends.FirstOrDefault(s => s.Line > fromLine && s.Bytes.AsSpan().IndexOf(pattern) >= 0);

    /// <summary>An msync completed strictly between the two lines that covers [address, address+length).</summary>
    public Msync? FindCovering(ulong address, ulong length, int afterLine, int beforeLine) =>
        _msyncs.FirstOrDefault(m => m.Line > afterLine && m.Line < beforeLine && m.Address <= address && m.Address + m.Length >= address + length);
}
