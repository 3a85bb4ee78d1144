namespace Pmem2.Tests;

/// <summary>Address-space layout checks ("nothing is mapped here") run alone, so no parallel test's
/// mmap lands in a range they have just seen released.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AddressSpaceCollection
{
    public const string Name = "Address space layout";
}

/// <summary>pmem2_vm_reservation_new with size 0, as libpmem2 1.12.1 does it.</summary>
[Collection(AddressSpaceCollection.Name)]
public class ZeroSizeReservationTests
{
    private const ulong MiB = T.MiB;

    [Fact]
    public void ZeroSizeReservationHoldsNothingAndCannotBeDeletedUntilExtended()
    {
        // libpmem2 1.12.1 accepts size 0; its delete then fails with munmap's EINVAL, and so does ours.
        var rsv = Pmem2VmReservation.Create(0, 0);
        Assert.Equal(0UL, rsv.Size);
        Assert.Equal(0, rsv.Address % (nint)(2 * MiB));
        Assert.Null(VmReservationTests.Vma(rsv.Address)); // nothing is reserved
        for (var i = 0; i < 2; i++)
        {
            var e = T.Fails((Pmem2ErrorCode)(-22), rsv.Dispose);
            Assert.Equal("munmap: Invalid argument", e.Message);
        }

        Assert.Equal("reservation shrink offset 0 is out of reservation range", T.Fails(Pmem2ErrorCode.OffsetOutOfRange, () => rsv.Shrink(0, 4096)).Message);
        rsv.Extend(0);
        Assert.Equal(0UL, rsv.Size);

        // Growing it reserves real address space at its address; then it deletes normally.
        rsv.Extend(8192);
        Assert.Equal(8192UL, rsv.Size);
        Assert.Contains("---p", VmReservationTests.Vma(rsv.Address));
        var address = rsv.Address;
        rsv.Dispose();
        Assert.Null(VmReservationTests.Vma(address));

        // At a fixed address: the following 2 MiB must be free (as in libpmem2), nothing stays reserved.
        using var held = Pmem2VmReservation.Create(0, 4 * MiB);
        var atHeld = T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2VmReservation.Create(held.Address + (nint)MiB, 0));
        Assert.Equal("mmap MAP_FIXED_NOREPLACE: File exists", atHeld.Message);
        T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2VmReservation.Create(held.Address - (nint)MiB, 0));
        var free = held.Address + (nint)(4 * MiB) + (nint)(2 * MiB);
        if (VmReservationTests.Vma(free) is null && VmReservationTests.Vma(free + (nint)(2 * MiB) - 1) is null)
        {
            var fixedZero = Pmem2VmReservation.Create(free, 0);
            Assert.Equal(free, fixedZero.Address);
            Assert.Null(VmReservationTests.Vma(free));
            T.Fails((Pmem2ErrorCode)(-22), fixedZero.Dispose);
        }
    }
}
