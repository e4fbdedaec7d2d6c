// Parse XML documents the way Xen Orchestra's xo-server does, and print what XO gets.
//
// stdin: a JSON array of XML strings. stdout: a JSON array, one object per input:
//   parsed       what xo-server's parseXml returns: fast-xml-parser's object, or "" when
//                the parser throws (parseXml catches, logs, and returns "")
//   parseError   the parser's message when it threw, else absent
//   ms           milliseconds one parse took
//   docker       for a docker_ps document only: the `docker` fields xo-server builds
//                from VM.other_config (see below), or null when building them throws
//   dockerError  the TypeError XO's VM conversion would hit, else absent
//
// Written for this project (not copied from XO). What it reproduces, as read in
// vatesfr/xen-orchestra (packages/xo-server):
//   - package.json: "fast-xml-parser": "^4.0.0"; yarn.lock resolves it to 4.5.6, the
//     exact version pinned in package.json beside this file.
//   - src/utils.mjs parseXml: one XMLParser with the options in XO_OPTIONS below, the
//     input turned into a string when it is a Buffer, "" returned when parse throws.
//   - src/xapi-object-to-xo.mjs (vm.docker): `containers` is docker_ps.item made an
//     array (absent -> [], one object -> [object]), `process` (deprecated) is the whole
//     docker_ps object; each is parsed separately, and nothing else is done with them:
//     no trimming, renaming or number conversion beyond the parser's own.
//   - xo-web src/xo-app/vm/tab-containers.js reads, for each container c,
//     c.entry.names, c.entry.command, c.entry.created (times 1000), c.entry.status,
//     and passes c.entry.container to the lifecycle calls; `columns` below is that view.
import { XMLParser } from 'fast-xml-parser'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

export const XO_OPTIONS = Object.freeze({
  attributeNamePrefix: '',
  ignoreAttributes: false,
  ignoreDeclaration: true,
  parseTagValue: false,
  parseAttributeValue: false,
})

const parser = new XMLParser({ ...XO_OPTIONS })

function parseLikeXo (xml) {
  const started = process.hrtime.bigint()
  let parsed
  let parseError
  try {
    parsed = parser.parse(Buffer.isBuffer(xml) ? xml.toString() : xml)
  } catch (error) {
    parsed = ''
    parseError = String(error && error.message)
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  return { parsed, parseError, ms }
}

const asArray = value => (value === undefined ? [] : Array.isArray(value) ? value : [value])

function dockerFields (xml) {
  // xo-server parses docker_ps once for `containers` and once more for `process`.
  const first = parseLikeXo(xml)
  const second = parseLikeXo(xml)
  // XO dereferences parsed.docker_ps.item without a guard: on "" (a parse failure) or a
  // document without a docker_ps root this throws, and the whole VM fails to convert.
  const containers = asArray(first.parsed.docker_ps.item)
  const processField = second.parsed.docker_ps
  const columns = containers.map(c => {
    const entry = c && c.entry
    return entry === undefined
      ? null
      : {
          names: entry.names,
          command: entry.command,
          createdMs: entry.created * 1000,
          status: entry.status,
          container: entry.container,
        }
  })
  return { containers, process: processField, columns, ms: first.ms + second.ms }
}

const inputs = JSON.parse(readFileSync(0, 'utf8'))
if (!Array.isArray(inputs) || inputs.some(x => typeof x !== 'string')) {
  throw new TypeError('stdin must be a JSON array of strings')
}
const results = inputs.map(xml => {
  const result = parseLikeXo(xml)
  const out = { parsed: result.parsed, ms: result.ms }
  if (result.parseError !== undefined) out.parseError = result.parseError
  if (/^\s*(<\?xml[^>]*\?>)?\s*<docker_ps[\s/>]/.test(xml)) {
    try {
      out.docker = dockerFields(xml)
    } catch (error) {
      out.docker = null
      out.dockerError = String(error && error.message)
    }
  }
  return out
})
const version = createRequire(import.meta.url)('fast-xml-parser/package.json').version
process.stdout.write(JSON.stringify({ fastXmlParser: version, options: XO_OPTIONS, results }))
