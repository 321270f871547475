"""The FIM workload's templates for Java: a service class with a cache, retries and records."""

from __future__ import annotations

from bench.fim_code import Code

JAVA = Code(
    extension="java",
    header="""\
package com.acme.$area.service;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
""",
    unit="""
final class $Noun$Kind {
    private static final Logger LOG = LoggerFactory.getLogger($Noun$Kind.class);
    private final ${Noun}Client client;
    private final int retries;
    private final Map<String, $Noun> cache = new HashMap<>();

    $Noun$Kind(${Noun}Client client, int retries) {
        this.client = client;
        this.retries = retries;
    }

    Optional<$Noun> $verb$Noun(String id) {
        $Noun cached = cache.get(id);
        if (cached != null) {
            return Optional.of(cached);
        }
        for (int attempt = 0; attempt < retries; attempt++) {
            try {
                $Noun found = client.get$Noun(id, Duration.ofSeconds($n));
                cache.put(id, found);
                return Optional.of(found);
            } catch (TimeoutException e) {
                LOG.warn("timeout on {}, attempt {}", id, attempt, e);
            }
        }
        return Optional.empty();
    }

    List<String> ${verb}All(List<$Noun> items) {
        List<String> result = new ArrayList<>();
        for ($Noun item : items.subList(0, Math.min($n, items.size()))) {
            if (item.get$Field() != null) {
                result.add(item.getName() + "=" + item.get$Field());
            }
        }
        return result;
    }
}
""",
    cursor_head="""
public final class ${Noun}Reports {
    public static Map<String, Double> summarize(List<$Noun> records, double threshold) {
        Map<String, Double> totals = new HashMap<>();
        for ($Noun record : records) {
            """,
    cursor_tail="""
        }
        return totals;
    }
}
""",
    declaration="""\
public record $Noun(String id, String name, String $field, double value, Instant createdAt) {
    public boolean isRecent(int days) {
        return Duration.between(createdAt, Instant.now()).toDays() < days;
    }

    public String get$Field() {
        return $field;
    }
}
""",
    chunk="""\
List<$Noun> ${verb}Batch(${Noun}Client client, List<String> ids) {
    List<$Noun> found = new ArrayList<>();
    for (int start = 0; start < ids.size(); start += $n) {
        found.addAll(client.getMany(ids.subList(start, Math.min(start + $n, ids.size()))));
    }
    LOG.info("$verb: {} of {}", found.size(), ids.size());
    return found.stream().filter(item -> item.get$Field() != null).toList();
}
""",
    answer="""if (record.value() < threshold) {
                continue;
            }
            String key = record.$field() == null ? "unknown" : record.$field();
            totals.merge(key, record.value(), Double::sum);
        }
        return totals;
    }

    public static void everything() {}
}
<|endoftext|>lorem ipsum dolor sit amet""",
)
