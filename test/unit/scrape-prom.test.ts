import { describe, expect, it } from 'vitest';
import { FamilySelector, PromParseError, parsePromNumber, parsePrometheus } from '../../src/scrape/prom.js';

const sel = (names: string[], opts?: ConstructorParameters<typeof FamilySelector>[1]) => new FamilySelector(names, opts);

describe('Prometheus text parser', () => {
  it('materialises only the families asked for, skipping every other line', () => {
    const text = [
      '# HELP python_gc_objects_collected_total Objects collected during gc',
      '# TYPE python_gc_objects_collected_total counter',
      'python_gc_objects_collected_total{generation="0"} 1234.0',
      '# HELP vllm:num_requests_running Number of requests in model execution batches.',
      '# TYPE vllm:num_requests_running gauge',
      'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
      'vllm:num_requests_runningX{model_name="m"} 99.0',
      'vllm:num_requests_waiting{model_name="m"} 1.0',
    ].join('\n');
    const out = parsePrometheus(text, sel(['vllm:num_requests_running']));
    expect([...out.keys()]).toEqual(['vllm:num_requests_running']);
    const f = out.get('vllm:num_requests_running')!;
    expect(f.type).toBe('gauge');
    expect(f.help).toBe('Number of requests in model execution batches.');
    expect(f.samples).toHaveLength(1);
    expect(f.samples[0]).toMatchObject({ suffix: '', value: 3 });
    expect({ ...f.samples[0].labels }).toEqual({ engine: '0', model_name: 'm' });
  });

  it('reads label values with escaped quotes, backslashes and newlines, blanks and a trailing comma', () => {
    const text = 'm{a="say \\"hi\\"",b="c:\\\\dir",c="two\\nlines" , d = "x",} 1\n';
    const f = parsePrometheus(text, sel(['m'])).get('m')!;
    expect({ ...f.samples[0].labels }).toEqual({ a: 'say "hi"', b: 'c:\\dir', c: 'two\nlines', d: 'x' });
  });

  it('keeps commas, braces and blanks inside label values', () => {
    const text = 'vllm:lora_requests_info{max_lora="2",running_lora_adapters="a, b",waiting_lora_adapters="{x} y"} 1.7e+09\n';
    const f = parsePrometheus(text, sel(['vllm:lora_requests_info'])).get('vllm:lora_requests_info')!;
    expect(f.samples[0].labels.running_lora_adapters).toBe('a, b');
    expect(f.samples[0].labels.waiting_lora_adapters).toBe('{x} y');
    expect(f.samples[0].value).toBe(1.7e9);
  });

  it('treats a label named __proto__ as a plain label', () => {
    const f = parsePrometheus('m{__proto__="x"} 1\n', sel(['m'])).get('m')!;
    expect(Object.keys(f.samples[0].labels)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(f.samples[0].labels, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(f.samples[0].labels)).toBe(Object.prototype);
  });

  it('reads +Inf, -Inf, NaN, exponents and Python-style floats', () => {
    const text = ['m{k="1"} +Inf', 'm{k="2"} -Inf', 'm{k="3"} NaN', 'm{k="4"} 7.557572e+06', 'm{k="5"} 3.0', 'm{k="6"} 1e-05', 'm{k="7"} -0.5'].join('\n');
    const values = parsePrometheus(text, sel(['m'])).get('m')!.samples.map((s) => s.value);
    expect(values.slice(0, 2)).toEqual([Infinity, -Infinity]);
    expect(Number.isNaN(values[2])).toBe(true);
    expect(values.slice(3)).toEqual([7557572, 3, 0.00001, -0.5]);
    expect(parsePromNumber('inf')).toBe(Infinity);
    expect(parsePromNumber('')).toBeUndefined();
    expect(parsePromNumber('abc')).toBeUndefined();
  });

  it('groups histogram _bucket/_sum/_count samples under the family, with le as a label', () => {
    const text = [
      '# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.',
      '# TYPE vllm:time_to_first_token_seconds histogram',
      'vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0.0',
      'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4.0',
      'vllm:time_to_first_token_seconds_count{model_name="m"} 4.0',
      'vllm:time_to_first_token_seconds_sum{model_name="m"} 0.75',
      'vllm:time_to_first_token_seconds_created{model_name="m"} 1.7e9',
    ].join('\n');
    const all = parsePrometheus(text, sel(['vllm:time_to_first_token_seconds'])).get('vllm:time_to_first_token_seconds')!;
    expect(all.type).toBe('histogram');
    expect(all.samples.map((s) => s.suffix)).toEqual(['_bucket', '_bucket', '_count', '_sum']);
    expect(all.samples[1].labels.le).toBe('+Inf');
    const lean = parsePrometheus(text, sel(['vllm:time_to_first_token_seconds'], { buckets: false, created: true }))
      .get('vllm:time_to_first_token_seconds')!;
    expect(lean.samples.map((s) => s.suffix)).toEqual(['_count', '_sum', '_created']);
  });

  it('finds counters written as family_total, declared either with or without the suffix', () => {
    const python = '# TYPE vllm:prefix_cache_hits counter\nvllm:prefix_cache_hits_total{model_name="m"} 12.0\n';
    const golang = '# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{model_name="m"} 12\n';
    for (const text of [python, golang]) {
      const f = parsePrometheus(text, sel(['vllm:prefix_cache_hits'])).get('vllm:prefix_cache_hits')!;
      expect(f.type).toBe('counter');
      expect(f.samples[0]).toMatchObject({ suffix: '_total', value: 12 });
    }
  });

  it('finds wanted samples among and after the samples of a family nobody asked for', () => {
    const text = [
      '# HELP other_seconds x',
      '# TYPE other_seconds histogram',
      'other_seconds_bucket{le="1"} 1',
      'other_seconds_count 1',
      'other_seconds_sum 1',
      'other_seconds_extra 7',
      'wanted 2',
      '# TYPE a counter',
      'a_total 5',
    ].join('\n');
    const out = parsePrometheus(text, sel(['other_seconds_extra', 'wanted', 'a_total']));
    expect(out.get('other_seconds_extra')!.samples[0].value).toBe(7);
    expect(out.get('wanted')!.samples[0].value).toBe(2);
    expect(out.get('a_total')!.samples[0]).toMatchObject({ suffix: '', value: 5 });
    expect(out.get('a_total')!.type).toBe('counter');
    expect(out.has('other_seconds')).toBe(false);
  });

  it('prefers an exact family name over a suffix reading', () => {
    const text = 'a_total 5\na 1\n';
    const out = parsePrometheus(text, sel(['a', 'a_total']));
    expect(out.get('a_total')!.samples[0]).toMatchObject({ suffix: '', value: 5 });
    expect(out.get('a')!.samples).toHaveLength(1);
    expect(out.get('a')!.samples[0].value).toBe(1);
  });

  it('reads a timestamp after the value and ignores an exemplar after it', () => {
    const text = 'm{a="1"} 2.5 1712345678901\nm 3 # {trace_id="abc"} 1.0 1712345678\nm 4 1712345678902 # {x="y"} 1\n';
    const s = parsePrometheus(text, sel(['m'])).get('m')!.samples;
    expect(s[0]).toMatchObject({ value: 2.5, timestampMs: 1712345678901 });
    expect(s[1].value).toBe(3);
    expect(s[1].timestampMs).toBeUndefined();
    expect(s[2]).toMatchObject({ value: 4, timestampMs: 1712345678902 });
  });

  it('accepts blanks between the metric name and its labels, and a label set on a label-less neighbour line', () => {
    const text = 'm {a="1"} 5\nm 6\nn{b="{"} 7\n';
    const out = parsePrometheus(text, sel(['m', 'n']));
    expect(out.get('m')!.samples.map((s) => [s.labels.a, s.value])).toEqual([['1', 5], [undefined, 6]]);
    expect(out.get('n')!.samples[0].labels.b).toBe('{');
  });

  it('copes with CRLF line ends, blank lines, leading blanks, tabs and no final newline', () => {
    const text = '\r\n# TYPE m gauge\r\n\r\n   m{a="1"}\t\t5\r\n\tm 6';
    const f = parsePrometheus(text, sel(['m'])).get('m')!;
    expect(f.type).toBe('gauge');
    expect(f.samples.map((s) => s.value)).toEqual([5, 6]);
  });

  it('reads HELP/TYPE lines separated by tabs', () => {
    const f = parsePrometheus('#\tTYPE\tm\tgauge\n#\tHELP m\thelp text\r\nm\t2\n', sel(['m'])).get('m')!;
    expect(f).toMatchObject({ type: 'gauge', help: 'help text' });
    expect(f.samples[0].value).toBe(2);
  });

  it('leaves HELP text out when the selector says so, still reading TYPE', () => {
    const f = parsePrometheus('# HELP m text\n# TYPE m gauge\nm 1\n', sel(['m'], { help: false })).get('m')!;
    expect(f.help).toBeUndefined();
    expect(f.type).toBe('gauge');
  });

  it('unescapes HELP text and ignores other comments', () => {
    const text = '# HELP m line one\\nline two \\\\ done\n# some comment m 5\n# TYPES m counter\nm 1\n';
    const f = parsePrometheus(text, sel(['m'])).get('m')!;
    expect(f.help).toBe('line one\nline two \\ done');
    expect(f.type).toBe('unknown');
    expect(f.samples).toHaveLength(1);
  });

  it('returns a family that has HELP/TYPE but no samples with an empty list', () => {
    const f = parsePrometheus('# HELP m nothing yet\n# TYPE m histogram\n', sel(['m'])).get('m')!;
    expect(f).toMatchObject({ type: 'histogram', samples: [] });
  });

  it('rejects a malformed wanted line with its line number, and never reads unwanted ones', () => {
    expect(() => parsePrometheus('ok 1\nm{a="1" 2\n', sel(['m']))).toThrow(PromParseError);
    expect(() => parsePrometheus('ok 1\nm{a="1" 2\n', sel(['m']))).toThrow(/line 2/);
    expect(() => parsePrometheus('m{a=1} 2\n', sel(['m']))).toThrow(/expected '"'/);
    expect(() => parsePrometheus('m{a="x\\', sel(['m']))).toThrow(/unterminated/);
    expect(() => parsePrometheus('m not-a-number\n', sel(['m']))).toThrow(/invalid value/);
    expect(() => parsePrometheus('m\n', sel(['m']))).toThrow(/invalid value/);
    expect(() => parsePrometheus('m 1 soon\n', sel(['m']))).toThrow(/invalid timestamp/);
    try {
      parsePrometheus('m{a="1" 2\n', sel(['m']));
    } catch (err) {
      expect((err as PromParseError).code).toBe('SCRAPE_PARSE');
    }
    expect(parsePrometheus('other{{{ garbage\nm 1\n', sel(['m'])).get('m')!.samples[0].value).toBe(1);
  });

  it('handles non-ASCII label values (model names are UTF-8)', () => {
    const f = parsePrometheus('m{model_name="模型-α"} 1\n', sel(['m'])).get('m')!;
    expect(f.samples[0].labels.model_name).toBe('模型-α');
  });
});
