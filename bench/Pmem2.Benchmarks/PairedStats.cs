namespace Pmem2.Benchmarks;

/// <summary>
/// What the per-round ratios of one paired row say about their median.
/// </summary>
/// <param name="Median">The median of the per-round ratios (the figure the paired table prints).</param>
/// <param name="Low">Lower end of the distribution-free confidence interval for the median ratio.</param>
/// <param name="High">Upper end of that interval.</param>
/// <param name="Coverage">Its exact coverage (for 24 rounds at 95 % asked: 97.7 %, since order statistics come in steps).</param>
/// <param name="Above">Rounds whose ratio is above 1 (the A side slower than the B side in that round).</param>
/// <param name="Below">Rounds whose ratio is below 1.</param>
/// <param name="PAbove">One-sided exact sign-test p-value for "the median ratio is above 1": P(Bin(Above+Below, 1/2) ≥ Above).</param>
/// <param name="Q1">First quartile of the per-round ratios (round-level noise, not the median's).</param>
/// <param name="Q3">Third quartile of the per-round ratios.</param>
internal readonly record struct MedianSummary(
    double Median, double Low, double High, double Coverage, int Above, int Below, double PAbove, double Q1, double Q3);

/// <summary>
/// The sign test and its confidence interval for a median, on the per-round ratios of a paired row.
/// Chosen because the paired table reports the median of the per-round ratios, and the sign test is
/// the test of exactly that statistic: under "no difference" each round's ratio is above 1 with
/// probability 1/2, so the count of rounds above 1 is Binomial(n, 1/2). The interval is the classic
/// order-statistic one that inverts the same test: [x(k), x(n+1-k)] with k the largest index for
/// which 2·P(Bin(n, 1/2) ≤ k-1) ≤ 1 - confidence; it needs no resampling, no random seed and no
/// assumption about the shape of the ratios' distribution (only that rounds are exchangeable).
/// Hand-written (about 60 lines) after checking the offline package list: MathNet.Numerics 5.0.0
/// has the binomial distribution but no sign test or median interval; Perfolizer 0.6.1 (already
/// here through BenchmarkDotNet) and Pragmastat 3.2.4 have two-sample (unpaired) tests and bounds only.
/// </summary>
internal static class PairedStats
{
    public static MedianSummary Summarize(IReadOnlyList<double> ratios, double confidence = 0.95)
    {
        var s = ratios.Order().ToArray();
        int n = s.Length;
        if (n == 0)
        {
            return new MedianSummary(double.NaN, double.NaN, double.NaN, 0, 0, 0, 1, double.NaN, double.NaN);
        }

        // k (1-based): the largest with 2·P(X ≤ k-1) ≤ alpha; k = 0 means no interval of that
        // confidence exists at this n (fewer than 6 rounds at 95 %): report the full range then.
        double alpha = 1 - confidence;
        int k = 0;
        while (k < n / 2 && 2 * BinomialHalfCdf(n, k) <= alpha)
        {
            k++;
        }

        double low = k == 0 ? s[0] : s[k - 1];
        double high = k == 0 ? s[n - 1] : s[n - k];
        double coverage = k == 0 ? 1 : 1 - (2 * BinomialHalfCdf(n, k - 1));

        // Exact ties at 1.0 carry no sign and are dropped, as the sign test does.
        int above = s.Count(r => r > 1);
        int below = s.Count(r => r < 1);
        int m = above + below;
        double pAbove = m == 0 ? 1 : 1 - BinomialHalfCdf(m, above - 1);

        return new MedianSummary(Quantile(s, 0.5), low, high, coverage, above, below, pAbove, Quantile(s, 0.25), Quantile(s, 0.75));
    }

    /// <summary>P(X ≤ k) for X ~ Binomial(n, 1/2), summed exactly in log space (any n; k &lt; 0 gives 0).</summary>
    public static double BinomialHalfCdf(int n, int k)
    {
        if (k < 0)
        {
            return 0;
        }

        if (k >= n)
        {
            return 1;
        }

        double logChoose = 0; // log C(n, 0)
        double logHalfPowN = -n * Math.Log(2);
        double sum = 0;
        for (int i = 0; i <= k; i++)
        {
            if (i > 0)
            {
                logChoose += Math.Log(n - i + 1) - Math.Log(i);
            }

            sum += Math.Exp(logChoose + logHalfPowN);
        }

        return Math.Min(sum, 1);
    }

    /// <summary>Linear-interpolated quantile of a sorted sample (type 7, the default of R and numpy); q = 0.5 is the ordinary median.</summary>
    public static double Quantile(double[] sorted, double q)
    {
        double h = (sorted.Length - 1) * q;
        int lo = (int)Math.Floor(h);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + ((h - lo) * (sorted[hi] - sorted[lo]));
    }
}
