using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Native;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Cli;

/// <summary>What every command resolves the same way: the device, the datasets, the model config.</summary>
internal static class Setup
{
    public const string SyntheticName = "synthetic";

    public static IReadOnlyList<string> DatasetNames { get; } = [.. Datasets.Names, SyntheticName];

    /// <summary>The compute context for --device; "auto" falls back to the CPU with a one-line notice.</summary>
    public static ComputeContext Context(string device, Action<string> notice)
    {
        if (device.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            notice(CudaDriver.IsAvailable
                ? "device: a CUDA GPU is present, but this build has no CUDA backend yet; using the CPU"
                : $"device: {CudaDriver.UnavailableReason}; using the CPU");
            return CpuBackend.Instance.DefaultContext;
        }

        Device parsed;
        try
        {
            parsed = Device.Parse(device);
        }
        catch (FormatException e)
        {
            throw new UserError($"--device: {e.Message} (or auto)");
        }

        if (parsed.Kind == DeviceKind.Cuda)
        {
            throw new UserError(CudaDriver.IsAvailable
                ? $"--device {device}: this build has no CUDA backend yet; use --device cpu"
                : $"--device {device}: {CudaDriver.UnavailableReason}; use --device cpu");
        }

        return CpuBackend.Instance.DefaultContext;
    }

    /// <summary>Training and test sets of a named dataset (synthetic data is generated, the rest read from disk).</summary>
    public static (ImageDataset Train, ImageDataset Test) Load(string dataset, string? directory, int seed)
    {
        if (dataset.Equals(SyntheticName, StringComparison.OrdinalIgnoreCase))
        {
            // One set split in two: the class patterns come from the seed, so both parts must share it.
            var (train, test) = Synthetic.Create(7000, 10, 1, 28, seed).Split(1.0 / 7, seed);
            return (train, test);
        }

        return Datasets.Load(dataset, directory);
    }

    /// <summary>Checks that a model built for <paramref name="config"/> can read <paramref name="data"/>.</summary>
    public static void CheckFits(ModelConfig config, ImageDataset data, string what)
    {
        if (data.Channels != config.Channels)
        {
            throw new UserError($"{what} has {data.Channels}-channel images but the model expects {config.Channels}");
        }

        if (data.Classes != config.Classes)
        {
            throw new UserError($"{what} has {data.Classes} classes but the model classifies {config.Classes}");
        }
    }

    /// <summary>
    /// The training set split as the trainer's runs split it (the options' validation fraction, seeded by the
    /// options' seed), with the training and evaluation transforms: every command sees the same validation images.
    /// </summary>
    public static TrainData Split(ImageDataset trainSet, ImageDataset test, ModelConfig config, TrainOptions options)
    {
        var (train, validation) = trainSet.Split(options.ValidationFraction, options.Seed);
        return new TrainData(train, validation, test, Transform(config, train: options.Augment), Transform(config, train: false));
    }

    /// <summary>The reference normalisation, resizing to the model's input size (and augmenting when training).</summary>
    public static Transform Transform(ModelConfig config, bool train) => Data.Transform.Reference(config.Channels, config.ImageSize, train);
}
