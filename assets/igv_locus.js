/* IGV tab -> app locus: report where the user navigates inside IGV (drag, zoom, IGV's own search box).
 *
 * dash-bio 1.0.2's Igv component keeps its igv.js 2.6.8 browser to itself (its `locus` prop is only the initial
 * locus and is never written back), so this script catches the browser when dash-bio creates it: it wraps the
 * modules of every webpack chunk dash-bio loads and, once the igv.js module is evaluated, wraps
 * `igv.createBrowser`. Each browser then reports its 'locuschange' events (debounced, deduplicated, only while
 * its page is shown) into the dcc.Store {type: "igv-locus", igv: <the Igv component's id>} that callbacks/igv.py
 * renders next to it; the server turns the report into the app's locus (ids.LOCUS, and so the URL's locus=).
 *
 * Events fired while igv.js creates the browser (it goes to its initial locus) are never seen: the listener is
 * attached after createBrowser resolves, so IGV opening at the app's own locus reports nothing.
 */
(function () {
    "use strict";

    var STORE_TYPE = "igv-locus"; // layouts/ids.py IGV_LOCUS
    var DEBOUNCE_MS = 400;
    var SINGLE_LOCUS = /^[A-Za-z0-9_.]+:[\d,]+-[\d,]+$/;

    var current = null; // {browser, el, id, timer, last}

    function shown(el) {
        return el.isConnected && el.getClientRects().length > 0 && /\/igv\/?$/.test(window.location.pathname);
    }

    function report(entry, label) {
        if (entry !== current || !shown(entry.el)) {
            return; // a replaced browser, or the IGV tab is not the active page
        }
        if (typeof label !== "string" || !SINGLE_LOCUS.test(label) || label === entry.last) {
            return; // whole genome ("all"), several loci, or no change
        }
        var dc = window.dash_clientside;
        if (!dc || typeof dc.set_props !== "function") {
            return;
        }
        entry.last = label;
        dc.set_props({type: STORE_TYPE, igv: entry.id}, {data: {locus: label}});
    }

    function attach(browser, el) {
        if (!browser || typeof browser.on !== "function" || !el) {
            return;
        }
        var entry = {browser: browser, el: el, id: el.id, timer: null, last: null};
        current = entry;
        browser.on("locuschange", function (ev) {
            var label = ev && ev.label;
            clearTimeout(entry.timer);
            entry.timer = setTimeout(function () { report(entry, label); }, DEBOUNCE_MS);
        });
    }

    function hookIgv(api) {
        if (!api || typeof api.createBrowser !== "function" || typeof api.removeBrowser !== "function"
                || api.__gridsLocusHook) {
            return;
        }
        api.__gridsLocusHook = true;
        var create = api.createBrowser;
        api.createBrowser = function (el) {
            return create.apply(this, arguments).then(function (browser) {
                try {
                    attach(browser, el);
                } catch (e) {
                    console.warn("IGV locus sync:", e); // eslint-disable-line no-console
                }
                return browser;
            });
        };
    }

    function wrapModules(modules) {
        if (!modules || typeof modules !== "object") {
            return;
        }
        Object.keys(modules).forEach(function (key) {
            var factory = modules[key];
            if (typeof factory !== "function" || factory.__gridsWrapped) {
                return;
            }
            var wrapped = function (module) {
                var out = factory.apply(this, arguments);
                try {
                    var exp = module && module.exports;
                    hookIgv(exp);
                    hookIgv(exp && exp.default);
                } catch (e) { /* not igv.js */ }
                return out;
            };
            wrapped.__gridsWrapped = true;
            modules[key] = wrapped;
        });
    }

    function install() {
        var queue = window.webpackJsonpdash_bio;
        if (!queue || queue.__gridsLocusHook || queue.push === Array.prototype.push) {
            return false; // dash-bio's bundle has not installed its chunk loader yet
        }
        var push = queue.push;
        queue.push = function (chunk) {
            try {
                wrapModules(chunk && chunk[1]);
            } catch (e) { /* leave the chunk as it is */ }
            return push.apply(this, arguments);
        };
        queue.__gridsLocusHook = true;
        return true;
    }

    window.gridsIgv = {
        browser: function () { return current && current.el.isConnected ? current.browser : null; },
    };

    var tries = 0;
    function retry() { // dash-bio's bundle may load after this asset: keep trying for up to 10 s
        if (!install() && ++tries < 100) {
            setTimeout(retry, 100);
        }
    }
    if (!install()) {
        if (document.readyState === "loading") {
            document.addEventListener("DOMContentLoaded", retry);
        } else {
            setTimeout(retry, 0);
        }
    }
}());
