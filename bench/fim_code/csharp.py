"""The FIM workload's templates for C#: a service class with async retries and records."""

from __future__ import annotations

from bench.fim_code import Code

CSHARP = Code(
    extension="cs",
    header="""\
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;

namespace Acme.${Area}.Services;
""",
    unit="""
public sealed class $Noun$Kind
{
    private readonly I${Noun}Client _client;
    private readonly ILogger<$Noun$Kind> _logger;
    private readonly Dictionary<string, $Noun> _cache = new();

    public $Noun$Kind(I${Noun}Client client, ILogger<$Noun$Kind> logger, int retries = $n)
    {
        _client = client;
        _logger = logger;
        Retries = retries;
    }

    public int Retries { get; }

    public async Task<$Noun?> $Verb${Noun}Async(string id, CancellationToken token)
    {
        if (_cache.TryGetValue(id, out var cached))
        {
            return cached;
        }
        for (var attempt = 0; attempt < Retries; attempt++)
        {
            try
            {
                var found = await _client.Get${Noun}Async(id, token).ConfigureAwait(false);
                _cache[id] = found;
                return found;
            }
            catch (TimeoutException ex)
            {
                _logger.LogWarning(ex, "Timeout on {Id}, attempt {Attempt}", id, attempt);
            }
        }
        return null;
    }

    public IReadOnlyList<string> ${Verb}All(IEnumerable<$Noun> items) =>
        items.Where(i => i.$Field != null).Take($n).Select(i => $$"{i.Name}={i.$Field}").ToList();
}
""",
    cursor_head="""
public static class ${Noun}Reports
{
    public static Dictionary<string, decimal> Summarize(
        IEnumerable<$Noun> records, decimal threshold)
    {
        var totals = new Dictionary<string, decimal>();
        foreach (var record in records)
        {
            """,
    cursor_tail="""
        }
        return totals;
    }
}
""",
    declaration="""\
public sealed record $Noun(string Id, string Name, string? $Field, decimal Value)
{
    public DateTime CreatedAt { get; init; } = DateTime.UtcNow;

    public bool IsRecent(int days = $n) => DateTime.UtcNow - CreatedAt < TimeSpan.FromDays(days);
}
""",
    chunk="""\
public async Task<IReadOnlyList<$Noun>> ${Verb}BatchAsync(
    IReadOnlyList<string> ids, CancellationToken token)
{
    var found = new List<$Noun>();
    foreach (var batch in ids.Chunk($n))
    {
        found.AddRange(await _client.GetManyAsync(batch, token).ConfigureAwait(false));
    }
    _logger.LogInformation("$Verb: {Found} of {Total}", found.Count, ids.Count);
    return found.Where(item => item.$Field != null).ToList();
}
""",
    answer="""if (record.Value < threshold)
            {
                continue;
            }
            var key = record.$Field ?? "unknown";
            totals[key] = totals.GetValueOrDefault(key) + record.Value;
        }
        return totals;
    }

    public static void Everything() { }
}
<|endoftext|>lorem ipsum dolor sit amet""",
)
