using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Sdk;

namespace Pmem2.NativeTests;

/// <summary>
/// The comparison machinery must be able to fail: fed with known-different results it reports them.
/// (Every differential test above passes only because nothing differs, so this guards against a
/// harness that silently compares nothing.)
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class HarnessSelfTests
{
    private readonly OracleFiles _files;

    public HarnessSelfTests(OracleFiles files)
    {
        NativeRequirement.Ensure();
        _files = files;
    }

    [Fact]
    public void DifferReportsEveryKindOfDifference()
    {
        var differ = new Differ("self-test");
        var ok = Outcome.Mapped(4096, Raw.Page, 2 << 20);
        differ.Compare("same success", ok, Outcome.Mapped(4096, Raw.Page, 4 << 20));
        differ.Compare("same failure", Outcome.Failed(-100006, "m"), Outcome.Failed(-100006, "m"));
        differ.Compare("native without message", Outcome.Failed(-100004, null), Outcome.Failed(-100004, "anything"));
        Assert.Empty(differ.Mismatches);
        Assert.Equal(1, differ.MessagesNotSetByNative);

        differ.Compare("code", Outcome.Failed(-100006, "m"), Outcome.Failed(-100015, "m"));
        differ.Compare("success vs failure", ok, Outcome.Failed(-22, "mmap: Invalid argument"));
        differ.Compare("size", ok, Outcome.Mapped(8192, Raw.Page, 2 << 20));
        differ.Compare("granularity", ok, Outcome.Mapped(4096, Raw.CacheLine, 2 << 20));
        differ.Compare("alignment", ok, Outcome.Mapped(4096, Raw.Page, (2 << 20) + 4096));
        differ.Compare("message", Outcome.Failed(-100011, "offset is not a multiple of 4096"), Outcome.Failed(-100011, "offset is not a multiple of 4097"));
        differ.Compare("exception", ok, Outcome.Threw(new InvalidOperationException("boom")));
        Assert.Equal(7, differ.Mismatches.Count);
        Assert.Throws<FailException>(() => differ.AssertClean(new NullOutput(), 1));
        Assert.Throws<TrueException>(() => new Differ("too few").AssertClean(new NullOutput(), 1));
    }

    [Fact]
    public void MemDifferentialReportsAWrongCopyAndAnException()
    {
        var path = _files.NewPath("self-mem");
        var initial = MemCases.Pattern(MemCases.FileSize, 1);
        File.WriteAllBytes(path, initial);
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
            Assert.Equal(0, NativeMap.TryCreate((int)handle.DangerousGetHandle(), Raw.Page, 0, 0, Raw.Shared, Raw.RW, out var nativeMap));
            using (nativeMap)
            {
                var errors = new List<string>();
                var result = new MemResult { OursEngine = "faulty" };
                var cases = MemCases.Memmove().Take(20).Concat(MemCases.Memset().Take(3)).ToList();
                MemDifferential.RunCases(MemMode.Page, cases, new ModelSide((byte[])initial.Clone()), new NativeSideMem(nativeMap!, errors), [new FaultySide((byte[])initial.Clone())], errors, result);
                Assert.Empty(result.OracleDisagreements);
                Assert.Contains(result.Mismatches, m => m.Contains("memmove b:4096", StringComparison.Ordinal) && m.Contains("faulty differs from native", StringComparison.Ordinal));
                Assert.Contains(result.Mismatches, m => m.Contains("faulty threw", StringComparison.Ordinal) && m.Contains("memset", StringComparison.Ordinal));
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A model whose memmove drops the last byte and whose memset throws.</summary>
    private sealed class FaultySide(byte[] bytes) : IMemSide
    {
        private readonly ModelSide _inner = new(bytes);

        public string Name => "faulty";

        public void Fill(ulong off, ulong len, byte value) => _inner.Fill(off, len, value);

        public void Write(ulong off, byte[] data) => _inner.Write(off, data);

        public void Persist(ulong off, ulong len)
        {
        }

        public void Drain()
        {
        }

        public void Memcpy(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) => _inner.Memcpy(dst, src, len, flags);

        public void CopyIn(ulong dst, byte[] data, Pmem2MemFlags flags) => _inner.CopyIn(dst, data, flags);

        public void Memmove(ulong dst, ulong src, ulong len, Pmem2MemFlags flags) => _inner.Memmove(dst, src, len > 1 ? len - 1 : len, flags);

        public void Memset(ulong dst, byte value, ulong len, Pmem2MemFlags flags) => throw new InvalidOperationException("memset is broken");

        public void CopyInDeferred(ulong dst, byte[] data) => _inner.CopyInDeferred(dst, data);

        public void Read(ulong off, byte[] destination, int length) => _inner.Read(off, destination, length);
    }

    private sealed class NullOutput : Xunit.Abstractions.ITestOutputHelper
    {
        public void WriteLine(string message)
        {
        }

        public void WriteLine(string format, params object[] args)
        {
        }
    }
}
