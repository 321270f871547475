"""The FIM workload's templates for JavaScript: a CommonJS service class with async retries."""

from __future__ import annotations

from bench.fim_code import Code

JAVASCRIPT = Code(
    extension="js",
    header="""\
'use strict';

const { ${Noun}Client } = require('../clients/$noun');
const logger = require('../logger').child({ area: '$area' });
""",
    unit="""
class $Noun$Kind {
  constructor(client, { retries = $n } = {}) {
    this.client = client;
    this.retries = retries;
    this.cache = new Map();
  }

  async $verb$Noun(id) {
    if (this.cache.has(id)) {
      return this.cache.get(id);
    }
    for (let attempt = 0; attempt < this.retries; attempt += 1) {
      try {
        const found = await this.client.get$Noun(id, { timeout: $n * 1000 });
        this.cache.set(id, found);
        return found;
      } catch (error) {
        if (error.code !== 'ETIMEDOUT') {
          throw error;
        }
        logger.warn({ id, attempt }, 'timeout');
      }
    }
    return null;
  }
}

function ${verb}All${Noun}s(items, limit = $n) {
  return items
    .slice(0, limit)
    .filter((item) => item.$field != null)
    .map((item) => `$${item.name}=$${item.$field}`);
}
""",
    cursor_head="""
function summarize${Noun}s(records, threshold) {
  const totals = {};
  for (const record of records) {
    """,
    cursor_tail="""
  }
  return totals;
}

module.exports = { summarize${Noun}s };
""",
    declaration="""\
/**
 * @typedef {Object} $Noun
 * @property {string} id
 * @property {string} name
 * @property {string|null} $field
 * @property {number} value
 * @property {Date} createdAt
 */
function is${Noun}Recent($noun, days = $n) {
  return Date.now() - $noun.createdAt.getTime() < days * 86400000;
}
""",
    chunk="""\
async function ${verb}${Noun}Batch(client, ids) {
  const found = [];
  for (let start = 0; start < ids.length; start += $n) {
    found.push(...(await client.getMany(ids.slice(start, start + $n))));
  }
  logger.info({ found: found.length, total: ids.length }, '$verb');
  return found.filter((item) => item.$field != null);
}
""",
    answer="""if (record.value < threshold) {
      continue;
    }
    const key = record.$field ?? 'unknown';
    totals[key] = (totals[key] || 0) + record.value;
  }
  return totals;
}

function everything() {}
<|endoftext|>lorem ipsum dolor sit amet""",
)
