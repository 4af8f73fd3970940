/**
 * Kubernetes names, labels and selectors, with the messages of k8s.io/apimachinery/pkg/util/validation
 * (and labels.NewRequirement for selectors), so that problems read like the API server's.
 */
import { pattern } from './schema.js';

export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

const SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
export const LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function subdomainErrors(v: string): string[] {
  const errs: string[] = [];
  if (v.length > 253) errs.push('must be no more than 253 characters');
  if (!pattern(DNS1123_SUBDOMAIN).test(v)) errs.push(SUBDOMAIN_MSG);
  return errs;
}

/** Errors of one label key (a qualified name), as apimachinery's IsQualifiedName words them. */
function labelKeyErrors(k: string): string[] {
  const errs: string[] = [];
  const slash = k.indexOf('/');
  const prefix = slash >= 0 ? k.slice(0, slash) : null;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== null) {
    if (prefix === '') errs.push('prefix part must be non-empty');
    else for (const e of subdomainErrors(prefix)) errs.push(`prefix part ${e}`);
  }
  if (name === '') errs.push('name part must be non-empty');
  else {
    if (name.length > 63) errs.push('name part must be no more than 63 characters');
    if (!QUALIFIED_NAME_RE.test(name)) errs.push(QUALIFIED_NAME_MSG);
  }
  return errs;
}

function labelValueErrors(v: string): string[] {
  const errs: string[] = [];
  if (v.length > 63) errs.push('must be no more than 63 characters');
  if (!LABEL_VALUE_RE.test(v)) errs.push(LABEL_VALUE_MSG);
  return errs;
}

/** Label key (qualified name) and value errors, each as `Invalid value: "x": reason`. */
export function labelErrors(labels: Record<string, string>): string[] {
  const errs: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    for (const e of labelKeyErrors(k)) errs.push(`Invalid value: ${JSON.stringify(k)}: ${e}`);
    for (const e of labelValueErrors(v)) errs.push(`Invalid value: ${JSON.stringify(v)}: ${e}`);
  }
  return errs;
}

/**
 * The first error metav1.LabelSelectorAsSelector reports for matchLabels (labels.NewRequirement:
 * `key: Invalid value: "k": …` or `values[0]: Invalid value: "v": …`, reasons joined by "; "),
 * keys in sorted order where Go would take map order. null when the selector is valid.
 */
export function selectorError(labels: Record<string, string>): string | null {
  for (const k of Object.keys(labels).sort()) {
    const ke = labelKeyErrors(k);
    if (ke.length > 0) return `key: Invalid value: ${JSON.stringify(k)}: ${ke.join('; ')}`;
    const ve = labelValueErrors(labels[k]);
    if (ve.length > 0) return `values[0]: Invalid value: ${JSON.stringify(labels[k])}: ${ve.join('; ')}`;
  }
  return null;
}
