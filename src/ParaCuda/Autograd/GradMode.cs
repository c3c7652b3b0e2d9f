namespace ParaCuda.Autograd;

/// <summary>Whether ops record themselves for backward, per thread (PyTorch's grad mode).</summary>
public static class GradMode
{
    [ThreadStatic]
    private static int t_disabledDepth;

    public static bool IsEnabled => t_disabledDepth == 0;

    /// <summary>Within the returned scope nothing is recorded: inference, evaluation, optimizer steps.</summary>
    public static NoGradScope NoGrad()
    {
        t_disabledDepth++;
        return new NoGradScope(active: true);
    }

    /// <summary>Ends a <see cref="NoGrad"/> region on dispose.</summary>
    public readonly struct NoGradScope : IDisposable
    {
        private readonly bool _active;

        internal NoGradScope(bool active) => _active = active;

        public void Dispose()
        {
            if (_active)
            {
                t_disabledDepth--;
            }
        }
    }
}
